//! The gateway's own connection to PostgreSQL: TLS (`verify-full` against a private CA, and
//! refusing a server whose certificate does not chain to it), TLS connections reused by the
//! pool, and the password methods other than SCRAM (md5, cleartext) that older servers use.
//! A PostgreSQL of its own with `ssl = on` and pg_hba rules per user.

mod common;

use std::path::{Path, PathBuf};

use airlock::demo::cluster::{ClusterOptions, TempCluster};
use common::*;

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap(), key)
}

/// A CA, a server certificate it signed for 127.0.0.1, and an unrelated CA. The key is the
/// server's to read only (PostgreSQL refuses a key others can read).
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ca_cert, ca_key) = ca("airlock test CA");
    let (other, _) = ca("someone else's CA");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let pki = Pki {
        ca: write("ca.pem", ca_cert.pem()),
        other_ca: write("other-ca.pem", other.pem()),
        cert: write("server.pem", cert.pem()),
        key: write("server.key", key.serialize_pem()),
        _dir: dir,
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pki.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    if nix::unistd::geteuid().is_root() {
        let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        for p in [pki._dir.path(), &pki.key, &pki.cert] {
            std::os::unix::fs::chown(p, Some(pg.uid.as_raw()), Some(pg.gid.as_raw())).unwrap();
        }
    }
    pki
}

fn tls_cluster(pki: &Pki) -> TempCluster {
    TempCluster::start(ClusterOptions {
        superuser_password: "postgres-pw".into(),
        extra_conf: vec![
            "ssl = on".into(),
            format!("ssl_cert_file = '{}'", pki.cert.display()),
            format!("ssl_key_file = '{}'", pki.key.display()),
        ],
    })
    .unwrap_or_else(|e| panic!("cannot start PostgreSQL with TLS: {e} (run scripts/test.sh)"))
}

/// A gateway whose upstream is `url` (relay policy: everything allowed).
fn gateway_to(url: String) -> Gw {
    Gw::start(move |c| c.upstream.url = url)
}

fn agent(gw: &Gw, sql: &str) -> std::process::Output {
    psql(&gw.url("postgres"), &["-At", "-c", sql], None)
}

fn upstream_url(cluster: &TempCluster, user: &str, password: &str, query: &str) -> String {
    let direct = cluster.url("postgres");
    let port = direct
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .to_owned();
    format!("postgres://{user}:{password}@127.0.0.1:{port}/postgres?{query}")
}

/// The client's view of a gateway that cannot reach its upstream: SQLSTATE and message.
fn connect_error(gw: &Gw) -> (String, String) {
    let url = gw.url("postgres");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .err()
        .expect("the connection fails");
    let db = err.as_db_error().expect("a server error");
    (db.code().code().to_owned(), db.message().to_owned())
}

fn verify_full(cluster: &TempCluster, root: &Path) -> String {
    upstream_url(
        cluster,
        "postgres",
        "postgres-pw",
        &format!("sslmode=verify-full&sslrootcert={}", root.display()),
    )
}

#[test]
fn upstream_tls_verify_full_is_encrypted_and_reused_by_the_pool() {
    let pki = pki();
    let cluster = tls_cluster(&pki);
    let gw = gateway_to(verify_full(&cluster, &pki.ca));
    let sql = "SELECT s.ssl, pg_backend_pid() FROM pg_catalog.pg_stat_ssl s WHERE s.pid = pg_backend_pid()";
    let first = agent(&gw, sql);
    assert!(first.status.success(), "{}", stderr(&first));
    let first = stdout(&first);
    assert!(first.starts_with("t|"), "upstream not encrypted: {first}");
    // The session ended cleanly: its TLS connection is pooled and the next session gets it.
    let pool = gw.gateway.pool.as_ref().expect("pool on");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pool.idle_count() == 0 {
        assert!(std::time::Instant::now() < deadline, "never pooled");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = agent(&gw, sql);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(
        stdout(&second),
        first,
        "the pooled TLS connection was reused"
    );
}

#[test]
fn upstream_tls_refuses_a_server_the_root_does_not_vouch_for() {
    let pki = pki();
    let cluster = tls_cluster(&pki);
    let gw = gateway_to(verify_full(&cluster, &pki.other_ca));
    let (code, message) = connect_error(&gw);
    assert_eq!(code, "08006", "{message}");
    assert!(
        message.contains("could not connect to upstream"),
        "{message}"
    );
    assert!(
        !message.contains("postgres-pw"),
        "credentials in an error: {message}"
    );
    // Encryption alone (`require`) does not check the certificate, as in libpq.
    let gw = gateway_to(upstream_url(
        &cluster,
        "postgres",
        "postgres-pw",
        "sslmode=require",
    ));
    let out = agent(&gw, "SELECT 1");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Roles whose pg_hba rule is md5 or plain `password` (cleartext, over TLS here), as on
/// servers that predate SCRAM.
#[test]
fn upstream_md5_and_cleartext_password_auth() {
    let pki = pki();
    let cluster = tls_cluster(&pki);
    cluster
        .psql(
            "postgres",
            "SET password_encryption = 'md5'; \
             CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw'; \
             CREATE ROLE plain_user LOGIN PASSWORD 'plain-pw';",
        )
        .expect("roles");
    let hba = cluster.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!(
            "host all md5_user 127.0.0.1/32 md5\n\
             host all plain_user 127.0.0.1/32 password\n{rules}"
        ),
    )
    .unwrap();
    cluster
        .psql("postgres", "SELECT pg_reload_conf()")
        .expect("reload");
    for (user, password) in [("md5_user", "md5-pw"), ("plain_user", "plain-pw")] {
        // The server has read the new rules once the user can log in directly.
        let direct = upstream_url(&cluster, user, password, "sslmode=require");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !psql(&direct, &["-At", "-c", "SELECT 1"], None)
            .status
            .success()
        {
            assert!(std::time::Instant::now() < deadline, "{user} cannot log in");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let gw = gateway_to(upstream_url(&cluster, user, password, "sslmode=require"));
        let out = agent(&gw, "SELECT current_user");
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), user);
        // A wrong password is the gateway's connection failure, not the client's.
        let gw = gateway_to(upstream_url(&cluster, user, "wrong", "sslmode=require"));
        let (code, message) = connect_error(&gw);
        assert_eq!(code, "08006", "{user}: {message}");
    }
}
