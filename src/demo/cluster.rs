//! A throwaway PostgreSQL cluster in a temporary directory, from the system's server binaries
//! (`pg_config --bindir`). Used by `airlock demo`, the integration tests and the benchmark
//! script. PostgreSQL refuses to run as root, so when the gateway runs as root the cluster
//! runs as the `postgres` system user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("PostgreSQL server binaries not found ({0}). Install them, e.g. `apt-get install -y postgresql-15` on Debian, or put pg_config on PATH")]
    NoBinaries(String),
    #[error("running as root but there is no `postgres` system user to run the server as (apt-get install -y postgresql-15 creates it)")]
    NoPostgresUser,
    #[error("{cmd} failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Options for a new cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Password of the `postgres` superuser; TCP connections need it (SCRAM).
    pub superuser_password: String,
    /// Extra `postgresql.conf` lines (`log_statement = 'all'`).
    pub extra_conf: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            superuser_password: "postgres".into(),
            extra_conf: Vec::new(),
        }
    }
}

/// A running cluster; stopped and deleted on drop.
pub struct TempCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
    pub password: String,
    run_as_postgres: bool,
}

impl TempCluster {
    pub fn start(opts: ClusterOptions) -> Result<TempCluster, ClusterError> {
        let bindir = find_bindir()?;
        let run_as_postgres = nix::unistd::geteuid().is_root();
        let dir = tempfile::Builder::new().prefix("airlock-pg-").tempdir()?;
        if run_as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or(ClusterError::NoPostgresUser)?;
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        }
        let mut cluster = TempCluster {
            dir,
            bindir,
            port: 0,
            password: opts.superuser_password.clone(),
            run_as_postgres,
        };
        let pwfile = cluster.path().join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", opts.superuser_password))?;
        cluster.chown(&pwfile)?;
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir().to_string_lossy(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--pwfile",
                &pwfile.to_string_lossy(),
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let mut conf = vec![
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", cluster.path().display()),
            "fsync = off".into(),
            "synchronous_commit = off".into(),
            "full_page_writes = off".into(),
            "max_connections = 300".into(),
            "shared_buffers = 128MB".into(),
        ];
        conf.extend(opts.extra_conf.iter().cloned());
        let conf_path = cluster.data_dir().join("postgresql.auto.conf");
        std::fs::write(&conf_path, conf.join("\n") + "\n")?;
        cluster.chown(&conf_path)?;
        // A free port can be taken between probing and binding: retry a few times.
        let mut last = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            let log = cluster.path().join("postgres.log");
            match cluster.run(
                "pg_ctl",
                &[
                    "start",
                    "-w",
                    "-t",
                    "30",
                    "-D",
                    &cluster.data_dir().to_string_lossy(),
                    "-l",
                    &log.to_string_lossy(),
                    "-o",
                    &format!("-p {}", cluster.port),
                ],
            ) {
                Ok(_) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClusterError::NoBinaries("pg_ctl".into())))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    pub fn log_file(&self) -> PathBuf {
        self.path().join("postgres.log")
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.password, self.port
        )
    }

    /// Runs `psql` as the superuser over the Unix socket (trust), failing on any error.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, ClusterError> {
        let out = self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-h",
                &self.path().to_string_lossy(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .map(|_| ())
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        if self.run_as_postgres {
            if let Ok(Some(user)) = nix::unistd::User::from_name("postgres") {
                std::os::unix::fs::chown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
            }
        }
        Ok(())
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<Output, ClusterError> {
        let exe = self.bindir.join(tool);
        let mut cmd = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.path())
            .stdin(Stdio::null())
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE");
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(ClusterError::Command {
                cmd: format!("{tool} {}", args.first().copied().unwrap_or("")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out)
    }

    /// Stops the server now (also done on drop).
    pub fn stop(&self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "stop",
                "-m",
                "immediate",
                "-w",
                "-D",
                &self.data_dir().to_string_lossy(),
            ],
        );
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory holding `postgres`, `initdb` and `pg_ctl`.
pub fn find_bindir() -> Result<PathBuf, ClusterError> {
    let mut tried = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.join("postgres").exists() && dir.join("initdb").exists() {
                return Ok(dir);
            }
            tried.push(dir.display().to_string());
        }
    }
    // Debian's pg_config may come from libpq-dev without the server; look where the server
    // packages install.
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
        versions.sort();
        for dir in versions.into_iter().rev() {
            if dir.join("postgres").exists() && dir.join("initdb").exists() {
                return Ok(dir);
            }
            tried.push(dir.display().to_string());
        }
    }
    Err(ClusterError::NoBinaries(if tried.is_empty() {
        "no pg_config on PATH and nothing under /usr/lib/postgresql".into()
    } else {
        format!("looked in {}", tried.join(", "))
    }))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
