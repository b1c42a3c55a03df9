#!/usr/bin/perl
# ejabberd external auth script for benches/scripts/vs-ejabberd.sh.
#
# Accepts user <USER_PREFIX><n> (n >= 1) with password <PASS_PREFIX><n>: the accounts
# rookery-load drives with `--auth plain:PASS_PREFIX --user-prefix USER_PREFIX`. Stores
# nothing, like rookery's stateless token backend, so there is no registration step.
# Only the domain given is served; everything else (setpass, tryregister, removeuser) is
# refused.
#
# Protocol (ejabberd extauth): each request is a 2-byte big-endian length then
# "op:user:server[:password]"; each reply is a 2-byte length (2) then a 2-byte result
# (1 = yes, 0 = no). Only perl builtins are used (perl-base is Essential on Debian).
# The script exits when ejabberd closes its stdin.
use strict;
use warnings;

my $user_prefix = 'user';
my $pass_prefix = 'vsbench-';
my $domain = 'example.test';

$| = 1;
binmode STDIN;
binmode STDOUT;

# Reads exactly $want bytes; undef at end of input.
sub read_exact {
    my ($want) = @_;
    my $buf = '';
    while (length($buf) < $want) {
        my $got = sysread(STDIN, $buf, $want - length($buf), length($buf));
        return undef if !defined($got) || $got == 0;
    }
    return $buf;
}

# The account number of a user name, or undef when it is not one of ours.
sub number_of {
    my ($user, $server) = @_;
    return undef if lc($server) ne lc($domain);
    return undef if substr($user, 0, length($user_prefix)) ne $user_prefix;
    my $n = substr($user, length($user_prefix));
    return undef if $n !~ /^[1-9][0-9]{0,9}$/;
    return $n;
}

while (defined(my $head = read_exact(2))) {
    my $len = unpack('n', $head);
    my $req = read_exact($len);
    last if !defined($req);
    # The password is last and may itself contain ':', so split into at most 4 fields.
    my ($op, $user, $server, $password) = split(/:/, $req, 4);
    my $ok = 0;
    if (defined($server)) {
        my $n = number_of($user, $server);
        if (defined($n)) {
            if ($op eq 'auth') {
                $ok = (defined($password) && $password eq $pass_prefix . $n) ? 1 : 0;
            } elsif ($op eq 'isuser') {
                $ok = 1;
            }
        }
    }
    syswrite(STDOUT, pack('nn', 2, $ok));
}
