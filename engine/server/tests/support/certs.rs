//! A test certificate authority made with the `openssl` command: a CA and a server
//! certificate for `example.test` it signed, in a temp dir removed on drop. Real PEM files,
//! as an operator would have them; clients under test trust the CA file.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    pub dir: PathBuf,
}

impl TestCa {
    /// A CA named `name` and a server certificate for `domain` (subjectAltName DNS), EC P-256.
    pub fn new(name: &str, domain: &str) -> TestCa {
        // A path without spaces: it goes into shell command lines (tmux).
        let stem: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dir = super::Server::temp_data_dir().with_extension(format!("ca-{stem}"));
        std::fs::create_dir_all(&dir).expect("ca dir");
        let ca = TestCa { dir };
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        ca.issue("server", domain);
        ca
    }

    /// A new key and certificate `<stem>.key`/`<stem>.pem` for `domain`, signed by the CA.
    pub fn issue(&self, stem: &str, domain: &str) {
        let extensions = format!(
            "subjectAltName=DNS:{domain}\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
             authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
        );
        std::fs::write(self.dir.join("ext.cnf"), extensions).expect("ext.cnf");
        let (key, csr, pem) = (
            format!("{stem}.key"),
            format!("{stem}.csr"),
            format!("{stem}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={domain}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
    }

    /// `--tls-cert` and `--tls-key` with the server certificate issued by `new`.
    pub fn server_flags(&self) -> Vec<String> {
        let flag = |name: &str, file: &str| [name.to_string(), self.arg(file)];
        [
            flag("--tls-cert", "server.pem"),
            flag("--tls-key", "server.key"),
        ]
        .concat()
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn arg(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("the openssl command runs (apt install openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
