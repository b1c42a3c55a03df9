#!/usr/bin/env bash
# rookery vs ejabberd on contacts/presence and group chat (XEP-0045): vs-ejabberd.sh with
# `--only presence,group` (same install, config, CPU allotment, fresh servers, bounded runs;
# the scenarios and their README sections are in vs-ejabberd-groups.sh). Writes
# results/<stamp>-groups-vs-ejabberd/README.md.
#
# Usage: benches/scripts/groups-vs-ejabberd.sh [--quick] [--only presence|group]
#        benches/scripts/groups-vs-ejabberd.sh --report results/<stamp>-groups-vs-ejabberd
# (as root; sizes can be overridden from the environment, see vs-ejabberd-groups.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
only=presence,group
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --only) [ $# -ge 2 ] || { echo "--only needs presence, group or both" >&2; exit 2; }; only=$2; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
for s in ${only//,/ }; do
    case "$s" in presence | group) ;; *) echo "--only: presence and group only (got '$s')" >&2; exit 2 ;; esac
done
exec "$here/vs-ejabberd.sh" --only "$only" "${args[@]}"
