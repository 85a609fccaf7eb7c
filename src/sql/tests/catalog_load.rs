//! Loading the catalog snapshot: against canned rows, and against a real PostgreSQL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::super::{
    Catalog, CatalogSource, Classifier, ClassifierOptions, ColumnRef, Kind, LiveName, RelationKind,
    SqlError, TableRef, Volatility,
};
use super::sorted;

type Rows = Vec<Vec<Option<String>>>;

/// Answers each catalog query by a keyword it contains.
struct Canned {
    answers: Vec<(&'static str, Result<Rows, String>)>,
    asked: Vec<String>,
}

impl CatalogSource for Canned {
    async fn query(&mut self, sql: &str) -> Result<Rows, String> {
        self.asked.push(sql.to_owned());
        self.answers
            .iter()
            .find(|(k, _)| sql.contains(k))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| Ok(Vec::new()))
    }
}

fn row(vals: &[Option<&str>]) -> Vec<Option<String>> {
    vals.iter().map(|v| v.map(str::to_owned)).collect()
}

fn rel_rows(schema: &str, name: &str, kind: &str, cols: &[&str]) -> Rows {
    cols.iter()
        .map(|c| row(&[Some(schema), Some(name), Some(kind), Some(c)]))
        .collect()
}

fn col(t: &str, c: &str) -> ColumnRef {
    let (s, n) = t.split_once('.').expect("schema.table");
    ColumnRef {
        table: TableRef {
            schema: s.into(),
            name: n.into(),
        },
        column: c.into(),
    }
}

/// Functions as `schema.name`, none for a missing entry.
fn names(fs: Option<&Vec<crate::sql::FunctionRef>>) -> Vec<String> {
    fs.into_iter().flatten().map(ToString::to_string).collect()
}

fn canned() -> Canned {
    let mut rels = Vec::new();
    rels.extend(rel_rows(
        "public",
        "customers",
        "r",
        &["id", "name", "email", "ssn"],
    ));
    rels.extend(rel_rows(
        "public",
        "orders",
        "r",
        &["id", "customer_id", "total"],
    ));
    rels.extend(rel_rows("public", "contacts", "v", &["who", "mail"]));
    rels.extend(rel_rows("public", "mails", "v", &["mail"]));
    rels.extend(rel_rows("public", "odd", "v", &["a", "b"]));
    rels.extend(rel_rows("public", "filtered", "v", &["id"]));
    rels.extend(rel_rows("public", "filtered_again", "v", &["id"]));
    rels.extend(rel_rows("public", "spend", "m", &["customer_id", "spent"]));
    rels.push(row(&[Some("public"), Some("empty"), Some("r"), None]));
    rels.extend(rel_rows("pg_catalog", "pg_class", "r", &["oid", "relname"]));
    Canned {
        answers: vec![
            // The fingerprint: first, since it names most catalogs.
            ("concat_ws", Ok(vec![row(&[Some("3:1234 7:5678")])])),
            // Every operator and type name: before those naming oprname too.
            (
                "'operator'",
                Ok(vec![
                    row(&[Some("operator"), Some(""), Some("~~~")]),
                    row(&[Some("type"), Some("public"), Some("checked")]),
                ]),
            ),
            // Operators and conversions: listed before those naming pg_proc and pg_depend.
            (
                "oprname",
                Ok(vec![
                    row(&[Some("~~~"), Some("public"), Some("f")]),
                    row(&[Some("~~~"), Some("public"), Some("g")]),
                    row(&[Some("<%"), Some("pg_catalog"), Some("lower")]),
                ]),
            ),
            (
                "typinput",
                Ok(vec![
                    // checked2 → checked → text; holder is made of checked2[].
                    row(&[Some("public"), Some("checked"), Some("part"), Some("pg_catalog"), Some("text"), Some("16401")]),
                    row(&[Some("public"), Some("checked2"), Some("part"), Some("public"), Some("checked"), Some("16402")]),
                    row(&[Some("public"), Some("holder"), Some("part"), Some("public"), Some("_checked2"), Some("16403")]),
                    row(&[Some("public"), Some("_checked2"), Some("part"), Some("public"), Some("checked2"), Some("16404")]),
                    row(&[Some("public"), Some("plain"), Some("part"), Some("pg_catalog"), Some("int4"), Some("16405")]),
                    row(&[Some("public"), Some("checked"), Some("code"), Some("public"), Some("f"), Some("16401")]),
                    // A cast to checked2 calling a user function.
                    row(&[Some("public"), Some("checked2"), Some("code"), Some("public"), Some("g"), Some("16402")]),
                    row(&[Some("public"), Some("calm"), Some("code"), Some("pg_catalog"), Some("lower"), Some("16406")]),
                ]),
            ),
            // Functions reads run: listed before those naming pg_depend and pg_proc only.
            (
                "pg_policy",
                Ok(vec![
                    row(&[Some("public"), Some("contacts"), Some("public"), Some("f")]),
                    row(&[Some("public"), Some("contacts"), Some("pg_catalog"), Some("lower")]),
                    row(&[Some("public"), Some("customers"), Some("public"), Some("g")]),
                ]),
            ),
            (
                "current_schemas",
                Ok(vec![
                    row(&[Some("agent"), Some("app")]),
                    row(&[Some("agent"), Some("public")]),
                ]),
            ),
            ("pg_attribute", Ok(rels)),
            (
                "pg_get_viewdef",
                Ok(vec![
                    row(&[Some("public"), Some("contacts"), Some(" SELECT customers.name AS who,\n    customers.email AS mail\n   FROM customers;")]),
                    // A view over a view, listed before the view it uses.
                    row(&[Some("public"), Some("mails"), Some(" SELECT contacts.mail\n   FROM contacts;")]),
                    // A definition sqlparser cannot parse: the dependency fallback applies.
                    row(&[Some("public"), Some("odd"), Some(" SELECT 1 AS a, 2 AS b FROM customers WHERE customers.id OPERATOR(pg_catalog.=) ANY (ARRAY[1]) AND FOO BAR BAZ")]),
                    row(&[Some("public"), Some("filtered"), Some(" SELECT customers.id\n   FROM customers\n  WHERE customers.ssn IS NOT NULL;")]),
                    row(&[Some("public"), Some("filtered_again"), Some(" SELECT filtered.id\n   FROM filtered;")]),
                    row(&[Some("public"), Some("spend"), Some(" SELECT orders.customer_id,\n    sum(orders.total) AS spent\n   FROM orders\n  GROUP BY orders.customer_id;")]),
                ]),
            ),
            (
                "pg_depend",
                Ok(vec![
                    row(&[Some("public"), Some("contacts"), Some("public"), Some("customers")]),
                    row(&[Some("public"), Some("mails"), Some("public"), Some("contacts")]),
                    row(&[Some("public"), Some("odd"), Some("public"), Some("customers")]),
                    row(&[Some("public"), Some("spend"), Some("public"), Some("orders")]),
                    // As if its definition also read customers (which runs public.g).
                    row(&[Some("public"), Some("spend"), Some("public"), Some("customers")]),
                    row(&[Some("public"), Some("filtered"), Some("public"), Some("customers")]),
                    row(&[Some("public"), Some("filtered_again"), Some("public"), Some("filtered")]),
                ]),
            ),
            (
                "pg_proc",
                Ok(vec![
                    row(&[Some("pg_catalog"), Some("lower"), Some("i"), Some("f"), Some("internal")]),
                    row(&[Some("public"), Some("f"), Some("i"), Some("f"), Some("sql")]),
                    row(&[Some("public"), Some("f"), Some("v"), Some("f"), Some("plpgsql")]),
                    row(&[Some("public"), Some("g"), Some("s"), Some("t"), Some("plpgsql")]),
                ]),
            ),
        ],
        asked: Vec::new(),
    }
}

#[tokio::test]
async fn loads_relations_views_functions_and_path() {
    let mut src = canned();
    let cat = Catalog::load(&mut src).await.expect("load");
    assert_eq!(src.asked.len(), 10, "ten catalog queries");
    assert_eq!(cat.version.as_deref(), Some("3:1234 7:5678"));
    assert_eq!(cat.search_path, vec!["app", "public"]);
    assert_eq!(cat.user.as_deref(), Some("agent"));
    let customers = cat
        .relation(&TableRef {
            schema: "public".into(),
            name: "customers".into(),
        })
        .expect("customers");
    assert_eq!(customers.columns, vec!["id", "name", "email", "ssn"]);
    assert_eq!(customers.kind, RelationKind::Table);
    let empty = cat
        .relation(&TableRef {
            schema: "public".into(),
            name: "empty".into(),
        })
        .expect("empty");
    assert!(empty.columns.is_empty());

    let contacts = cat
        .relation(&TableRef {
            schema: "public".into(),
            name: "contacts".into(),
        })
        .expect("contacts");
    assert_eq!(contacts.kind, RelationKind::View);
    assert_eq!(
        contacts.view_sources["who"],
        vec![col("public.customers", "name")]
    );
    assert_eq!(
        contacts.view_sources["mail"],
        vec![col("public.customers", "email")]
    );
    let mails = cat
        .relation(&TableRef {
            schema: "public".into(),
            name: "mails".into(),
        })
        .expect("mails");
    assert_eq!(
        mails.view_sources["mail"],
        vec![col("public.customers", "email")]
    );
    // Unanalyzable: every column from every column of what it depends on.
    let odd = cat
        .relation(&TableRef {
            schema: "public".into(),
            name: "odd".into(),
        })
        .expect("odd");
    assert_eq!(
        sorted(&odd.view_sources["a"]),
        sorted(&[
            col("public.customers", "id"),
            col("public.customers", "name"),
            col("public.customers", "email"),
            col("public.customers", "ssn"),
        ])
    );
    let spend = cat
        .relation(&TableRef {
            schema: "public".into(),
            name: "spend".into(),
        })
        .expect("spend");
    assert_eq!(spend.kind, RelationKind::MaterializedView);
    assert_eq!(
        spend.view_sources["spent"],
        vec![col("public.orders", "total")]
    );

    // Everything a view's definition reads, its filters included, through the views it reads.
    let touched = |name: &str| {
        sorted(
            &cat.relation(&TableRef {
                schema: "public".into(),
                name: name.into(),
            })
            .expect(name)
            .view_columns,
        )
    };
    let id_ssn = sorted(&[
        col("public.customers", "id"),
        col("public.customers", "ssn"),
    ]);
    assert_eq!(touched("filtered"), id_ssn);
    assert!(touched("filtered_again").contains(&col("public.customers", "ssn").to_string()));
    assert!(touched("mails").contains(&col("public.customers", "email").to_string()));
    assert_eq!(
        touched("odd").len(),
        4,
        "unanalyzable: every column it may reach"
    );
    assert!(touched("customers").is_empty());

    // What reads run: the view's own unsafe function (not the harmless `lower`), the table's
    // row-security function, and, for the views over them, both.
    let runs = |name: &str| {
        let rel = cat.relation(&TableRef {
            schema: "public".into(),
            name: name.into(),
        });
        let runs = &rel.expect(name).runs;
        runs.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert_eq!(runs("contacts"), vec!["public.f", "public.g"]);
    assert_eq!(runs("customers"), vec!["public.g"]);
    assert_eq!(runs("mails"), vec!["public.f", "public.g"]);
    assert_eq!(runs("filtered_again"), vec!["public.g"]);
    assert!(runs("orders").is_empty());
    assert!(
        runs("spend").is_empty(),
        "a materialized view runs nothing when read, whatever its definition reads"
    );

    // Operators: each function behind a name, harmless ones dropped (with the name).
    let ops = |name: &str| names(cat.operators.get(name));
    assert_eq!(ops("~~~"), vec!["public.f", "public.g"]);
    assert!(!cat.operators.contains_key("<%"), "lower is harmless");
    // Conversions: through domains, arrays and composites, down to the cast to text.
    let conv = |name: &str| names(cat.types.get(name));
    assert_eq!(conv("public.checked"), vec!["public.f"]);
    assert_eq!(conv("public.checked2"), vec!["public.f", "public.g"]);
    assert_eq!(conv("public.holder"), conv("public.checked2"));
    assert!(conv("public.plain").is_empty());
    assert!(conv("public.calm").is_empty(), "lower is harmless");
    assert_eq!(cat.type_oids[&16402], "public.checked2");
    assert!(cat.operator_names.contains("~~~"));
    assert!(cat.type_names.contains(&TableRef {
        schema: "public".into(),
        name: "checked".into(),
    }));
    assert_eq!(
        cat.type_oids.len(),
        4,
        "only types whose conversion runs something"
    );

    // Overloads merge to the riskiest.
    let f = &cat.functions["public.f"];
    assert_eq!(f.volatility, Volatility::Volatile);
    assert_eq!(f.language, "plpgsql");
    assert!(cat.functions["public.g"].security_definer);
    assert_eq!(
        cat.functions["pg_catalog.lower"].volatility,
        Volatility::Immutable
    );
}

#[tokio::test]
async fn load_errors_name_what_failed() {
    let mut src = canned();
    src.answers.insert(
        0,
        ("pg_proc", Err("permission denied for table pg_proc".into())),
    );
    match Catalog::load(&mut src).await {
        Err(SqlError::CatalogQuery(m)) => assert!(m.contains("permission denied"), "{m}"),
        other => panic!("expected a query error, got {other:?}"),
    }
    let mut src = canned();
    src.answers.insert(
        0,
        (
            "pg_attribute",
            Ok(vec![row(&[Some("public"), None, Some("r"), Some("x")])]),
        ),
    );
    match Catalog::load(&mut src).await {
        Err(SqlError::CatalogRow { query, .. }) => assert_eq!(query, "relations"),
        other => panic!("expected a row error, got {other:?}"),
    }
}

// ── against a real PostgreSQL ────────────────────────────────────────────────────────────

/// A throwaway cluster in a temporary directory, stopped on drop.
struct Cluster {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn cmd(&self, prog: &str) -> Command {
        let exe = self.bindir.join(prog);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start() -> Cluster {
        let out = Command::new("pg_config").arg("--bindir").output().expect(
            "pg_config not found: these tests need PostgreSQL's binaries (initdb, pg_ctl) on PATH",
        );
        let bindir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let dir = tempfile::tempdir().expect("tempdir");
        // PostgreSQL refuses to run as root: run it as the postgres user then.
        let as_postgres = nix::unistd::geteuid().is_root();
        if as_postgres {
            chown_to_postgres(dir.path());
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let c = Cluster {
            bindir,
            dir,
            port,
            as_postgres,
        };
        let st = c
            .cmd("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(c.data())
            .output()
            .expect("run initdb");
        assert!(
            st.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=''",
            c.port,
            c.dir.path().display()
        );
        let st = c
            .cmd("pg_ctl")
            .args(["-w", "-l"])
            .arg(c.dir.path().join("log"))
            .args(["-o", &opts, "-D"])
            .arg(c.data())
            .arg("start")
            .output()
            .expect("run pg_ctl");
        assert!(
            st.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        c
    }

    async fn connect(&self) -> tokio_postgres::Client {
        let conf = format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        );
        let (client, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
    }
}

fn chown_to_postgres(p: &Path) {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("a postgres user");
    std::os::unix::fs::chown(p, Some(user.uid.as_raw()), Some(user.gid.as_raw())).expect("chown");
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
    }
}

struct Pg(tokio_postgres::Client);

impl CatalogSource for Pg {
    async fn query(&mut self, sql: &str) -> Result<Rows, String> {
        let msgs = self.0.simple_query(sql).await.map_err(|e| e.to_string())?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect())
    }
}

const SCHEMA: &str = "
CREATE TABLE customers (id serial PRIMARY KEY, name text, email text, ssn text, phone text, created_at timestamptz DEFAULT now());
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, product_id int, quantity int, total numeric, created_at timestamptz);
CREATE TABLE products (id serial PRIMARY KEY, name text, price numeric);
ALTER TABLE customers DROP COLUMN phone;
ALTER TABLE customers ADD COLUMN phone text;
CREATE VIEW customer_contacts AS SELECT name, email FROM customers;
CREATE VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id;
CREATE VIEW contact_emails AS SELECT c.email AS address FROM customer_contacts c;
CREATE VIEW big_spenders AS SELECT c.name, t.total FROM customers c JOIN order_totals t ON t.customer_id = c.id WHERE t.total > 100;
CREATE FUNCTION reveal(int) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER AS $$ SELECT ssn FROM customers WHERE id = $1 $$;
CREATE VIEW revealed AS SELECT id, reveal(id) AS secret FROM customers;
CREATE MATERIALIZED VIEW spend AS SELECT customer_id, sum(total) AS spent FROM orders GROUP BY customer_id;
CREATE SCHEMA app;
CREATE TABLE app.customers (id int, nickname text);
CREATE FUNCTION bump() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
CREATE SEQUENCE s;
CREATE FUNCTION may_see(int) RETURNS bool LANGUAGE sql STABLE AS $$ SELECT $1 > 0 $$;
CREATE FUNCTION same(int, int) RETURNS bool LANGUAGE sql VOLATILE AS $$ SELECT $1 = $2 $$;
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = same);
CREATE TABLE guarded (id int);
ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
CREATE POLICY see ON guarded FOR SELECT USING (may_see(id));
CREATE POLICY put ON guarded FOR INSERT WITH CHECK (bump() > 0);
CREATE VIEW guarded_ids AS SELECT id FROM guarded;
CREATE TABLE items (id int, name text);
CREATE VIEW first_item AS SELECT name FROM items WHERE id === 1;
CREATE VIEW lowered AS SELECT lower(name) AS name, now() AS at FROM items;
CREATE FUNCTION pair_ok(text, text) RETURNS bool LANGUAGE sql VOLATILE AS $$ SELECT $1 = $2 $$;
CREATE OPERATOR ~~~ (LEFTARG = text, RIGHTARG = text, FUNCTION = pair_ok);
CREATE TYPE tag AS (v text);
CREATE FUNCTION tag_eq(tag, tag) RETURNS bool LANGUAGE sql IMMUTABLE AS $$ SELECT $1.v = $2.v $$;
CREATE OPERATOR = (LEFTARG = tag, RIGHTARG = tag, FUNCTION = tag_eq);
CREATE FUNCTION tag_join(tag, tag) RETURNS tag LANGUAGE sql VOLATILE AS $$ SELECT $1 $$;
CREATE OPERATOR + (LEFTARG = tag, RIGHTARG = tag, FUNCTION = tag_join);
CREATE FUNCTION ok_text(text) RETURNS bool LANGUAGE sql STABLE AS $$ SELECT length($1) < 10 $$;
CREATE DOMAIN short_text AS text CHECK (ok_text(VALUE));
CREATE DOMAIN shorter AS short_text;
CREATE DOMAIN tidy AS text CHECK (length(VALUE) < 5);
CREATE TYPE card AS (label shorter[], n int);
";

fn tr(s: &str, n: &str) -> TableRef {
    TableRef {
        schema: s.into(),
        name: n.into(),
    }
}

/// A cluster with [`SCHEMA`], a connection to it, and the catalog read over that connection.
async fn loaded() -> (Cluster, Pg, Catalog) {
    let cluster = Cluster::start();
    let client = cluster.connect().await;
    client.batch_execute(SCHEMA).await.expect("schema");
    let mut src = Pg(client);
    let cat = Catalog::load(&mut src).await.expect("load from PostgreSQL");
    (cluster, src, cat)
}

#[tokio::test]
async fn loads_from_a_real_postgres_and_classifies_with_it() {
    let (_cluster, src, cat) = loaded().await;

    assert_eq!(
        cat.search_path,
        vec!["public"],
        "$user has no schema; public remains"
    );
    let role = src
        .0
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(cat.user.as_deref(), Some(role.get::<_, &str>(0)));
    assert_eq!(
        cat.relation(&tr("public", "customers"))
            .expect("customers")
            .columns,
        vec!["id", "name", "email", "ssn", "created_at", "phone"],
        "attribute order, dropped columns left out"
    );
    // OIDs and attribute numbers, for checking row descriptions: the dropped column's number
    // is not among them.
    let oid: u32 = src
        .0
        .query_one(
            "SELECT 'public.customers'::regclass::oid, \
             (SELECT array_agg(attnum ORDER BY attnum) FROM pg_attribute \
              WHERE attrelid = 'public.customers'::regclass AND attnum > 0 AND NOT attisdropped)",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .expect("oid");
    let attrs = cat.attributes.get(&oid).expect("customers by OID");
    assert_eq!(attrs.table, tr("public", "customers"));
    assert_eq!(attrs.attnums.len(), 6);
    assert!(attrs.attnums.windows(2).all(|w| w[0] < w[1]), "sorted");
    assert!(
        !attrs.attnums.contains(&5),
        "phone was dropped as attribute 5"
    );
    assert!(cat.unknown_column(oid, attrs.attnums[5]).is_none());
    assert!(cat.unknown_column(oid, attrs.attnums[5] + 1).is_some());
    assert!(cat.relation(&tr("pg_catalog", "pg_class")).is_some());
    assert!(cat.relation(&tr("information_schema", "tables")).is_some());
    let views: HashMap<&str, Vec<String>> = [
        ("customer_contacts", "email"),
        ("contact_emails", "address"),
        ("big_spenders", "total"),
        ("revealed", "secret"),
        ("spend", "spent"),
    ]
    .into_iter()
    .map(|(v, c)| {
        let rel = cat
            .relation(&tr("public", v))
            .unwrap_or_else(|| panic!("view {v}"));
        (v, sorted(&rel.view_sources[c]))
    })
    .collect();
    assert_eq!(views["customer_contacts"], vec!["public.customers.email"]);
    assert_eq!(views["contact_emails"], vec!["public.customers.email"]);
    assert_eq!(views["big_spenders"], vec!["public.orders.total"]);
    assert_eq!(views["spend"], vec!["public.orders.total"]);
    // A view calling a function that may read anything: all columns it depends on.
    assert!(
        views["revealed"].contains(&"public.customers.ssn".to_string()),
        "{:?}",
        views["revealed"]
    );

    assert_eq!(
        cat.functions["pg_catalog.lower"].volatility,
        Volatility::Immutable
    );
    assert_eq!(
        cat.functions["pg_catalog.nextval"].volatility,
        Volatility::Volatile
    );
    assert!(cat.functions["public.reveal"].security_definer);
    assert_eq!(cat.functions["public.bump"].language, "plpgsql");

    // The functions reads run without naming them, as the server lists them.
    let runs = |name: &str| {
        let rel = cat.relation(&tr("public", name));
        let runs = &rel.unwrap_or_else(|| panic!("{name}")).runs;
        runs.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert_eq!(runs("revealed"), vec!["public.reveal"]);
    assert_eq!(
        runs("guarded"),
        vec!["public.may_see"],
        "the INSERT policy is not a read's"
    );
    assert_eq!(runs("guarded_ids"), vec!["public.may_see"]);
    assert_eq!(
        runs("first_item"),
        vec!["public.same"],
        "behind an operator"
    );
    assert!(runs("lowered").is_empty(), "{:?}", runs("lowered"));
    assert!(runs("customers").is_empty());

    // Operators a statement may reach by name: those no built-in shares the name of, and a
    // volatile one of a shared name; not the immutable `=` of a user type.
    let ops = |name: &str| names(cat.operators.get(name));
    assert_eq!(ops("~~~"), vec!["public.pair_ok"]);
    assert_eq!(ops("==="), vec!["public.same"]);
    assert_eq!(ops("+"), vec!["public.tag_join"]);
    assert!(ops("=").is_empty(), "{:?}", cat.operators);
    // Conversions: a domain's CHECK, through a domain over it and a composite of its arrays.
    let conv = |name: &str| names(cat.types.get(name));
    assert_eq!(conv("public.short_text"), vec!["public.ok_text"]);
    assert_eq!(conv("public.shorter"), vec!["public.ok_text"]);
    assert_eq!(conv("public.card"), vec!["public.ok_text"]);
    assert!(conv("public.tidy").is_empty(), "length is harmless");
    assert!(conv("public.tag").is_empty());

    let c = Classifier::new(Arc::new(cat), ClassifierOptions::default());
    let f = |sql: &str| c.classify(sql).statements[0].clone();
    for sql in [
        "SELECT * FROM guarded_ids",
        "SELECT count(*) FROM guarded",
        "SELECT name FROM first_item",
        "SELECT secret FROM revealed",
    ] {
        let facts = f(sql);
        assert!(facts.flags.unsafe_function, "{sql}: {facts:?}");
        assert_eq!(facts.kind, Kind::Read, "{sql}");
    }
    assert!(f("SELECT * FROM guarded_ids")
        .functions
        .contains(&"public.may_see".to_string()));
    for (sql, called) in [
        ("SELECT 'a' ~~~ 'b'", "public.pair_ok"),
        ("SELECT name FROM items WHERE name~~~'x'", "public.pair_ok"),
        ("SELECT id + 1 FROM items", "public.tag_join"),
        ("SELECT 'x'::shorter", "public.ok_text"),
        (
            "SELECT CAST(name AS public.short_text) FROM items",
            "public.ok_text",
        ),
        ("SELECT ROW(ARRAY['x'], 1)::card", "public.ok_text"),
        (
            "SELECT * FROM json_to_record('{}') AS r(a shorter)",
            "public.ok_text",
        ),
    ] {
        let facts = f(sql);
        assert!(facts.flags.unsafe_function, "{sql}: {facts:?}");
        assert!(
            facts.functions.contains(&called.to_string()),
            "{sql}: {facts:?}"
        );
    }
    // A name sqlparser cannot read is held unread.
    assert_eq!(
        f("SELECT name FROM items WHERE id === 1").kind,
        Kind::Unknown
    );
    // Names the snapshot does not hold are to be looked up: an unqualified type under each
    // schema of the path.
    let late = f("SELECT 'a' <<~>> 'b', 'x'::late_domain, 'y'::public.gone");
    assert_eq!(
        late.live_names,
        [
            LiveName::Type(tr("pg_catalog", "late_domain")),
            LiveName::Type(tr("public", "late_domain")),
            LiveName::Type(tr("public", "gone")),
            LiveName::Operator("<<~>>".into()),
        ]
    );
    // Known names, built-in or not, and syntax that only looks like an operator, are not.
    let known = f(
        "SELECT 'a' ~~~ 'b', 1 + -2, 1 != 2, 'x'::shorter, 'items'::regclass, \
         id::int, (ARRAY[1])[1:1], pg_catalog.round(1.5, s => 0) FROM items",
    );
    assert!(known.live_names.is_empty(), "{:?}", known.live_names);
    for sql in [
        "SELECT 'x'::tidy",
        "SELECT name FROM items WHERE name = 'a'",
    ] {
        assert!(!f(sql).flags.unsafe_function, "{sql}: {:?}", f(sql));
    }
    assert!(!f("SELECT * FROM lowered").flags.unsafe_function);
    assert_eq!(
        sorted(&f("SELECT * FROM customer_contacts").output_columns),
        vec!["public.customers.email", "public.customers.name"]
    );
    assert!(
        !f("SELECT lower(name), count(*), now(), random() FROM customers GROUP BY 1")
            .flags
            .unsafe_function
    );
    assert!(f("SELECT nextval('s')").flags.unsafe_function);
    assert!(f("SELECT bump()").flags.unsafe_function);
    assert!(f("SELECT reveal(1)").flags.unsafe_function);
    assert_eq!(f("SELECT relname FROM pg_class").kind, Kind::Catalog);
    assert_eq!(
        f("SELECT table_name FROM information_schema.tables").kind,
        Kind::Catalog
    );
    assert_eq!(f("SELECT * FROM pg_stats").kind, Kind::Export);
    assert_eq!(
        f("SELECT * FROM pg_nonexistent_table").kind,
        Kind::Read,
        "unknown pg_ names are not catalog reads when the snapshot has the real catalog"
    );
}

#[tokio::test]
async fn the_server_splits_text_where_the_classifier_does() {
    // What the classifier calls separate statements, the server runs as separate statements;
    // what it calls one (a comment or a string), the server does not run.
    let cluster = Cluster::start();
    let client = cluster.connect().await;
    let c = super::classifier();
    let cases = [
        ("SELECT 1;--\rCREATE TABLE t1 (a int)", true),
        ("SELECT 1 /* /* */ */; CREATE TABLE t2 (a int)", true),
        ("SELECT 1 /* /* */ ; CREATE TABLE t3 (a int); */", false),
        ("SELECT $a$ $b$ ; CREATE TABLE t4 (a int); $b$ $a$", false),
        ("SELECT E'\\''; CREATE TABLE t5 (a int); --'", true),
        (
            "SELECT 1 a$$, 2 b$$; CREATE TABLE t6 (a int); SELECT 3 c$$",
            true,
        ),
        ("SELECT 'x'';'; CREATE TABLE t7 (a int)", true),
    ];
    for (i, (sql, creates)) in cases.iter().enumerate() {
        let table = format!("t{}", i + 1);
        let classified_creates = c
            .classify(sql)
            .statements
            .iter()
            .any(|f| f.kind == Kind::Ddl && f.tables_written.iter().any(|t| t.name == table));
        assert_eq!(classified_creates, *creates, "classifier on {sql:?}");
        let _ = client.batch_execute(sql).await;
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .expect("probe")
            .get(0);
        assert_eq!(exists, *creates, "server on {sql:?}");
    }
}

async fn changed(cat: &Catalog, src: &mut Pg, tables: &[&TableRef]) -> bool {
    cat.changed_on(src, tables, &[]).await.expect("compared")
}

async fn names_changed(cat: &Catalog, src: &mut Pg, names: &[&LiveName]) -> bool {
    cat.changed_on(src, &[], names).await.expect("compared")
}

/// The live comparison behind statements the relay cannot check column by column: unchanged
/// tables agree; an added or dropped column, or a table dropped and created again under the
/// same name, disagree; a relation the snapshot does not know disagrees once it exists.
#[tokio::test]
async fn changed_on_compares_the_snapshot_with_the_live_columns() {
    let (_cluster, mut src, cat) = loaded().await;
    let (orders, products, customers) = (
        tr("public", "orders"),
        tr("public", "products"),
        tr("public", "customers"),
    );
    let unknown = tr("public", "nowhere");
    assert!(!changed(&cat, &mut src, &[&orders, &products]).await);
    assert!(!changed(&cat, &mut src, &[&unknown]).await);

    src.0
        .batch_execute("ALTER TABLE orders ADD COLUMN card_number text")
        .await
        .unwrap();
    assert!(changed(&cat, &mut src, &[&orders]).await);
    assert!(changed(&cat, &mut src, &[&products, &orders]).await);
    assert!(!changed(&cat, &mut src, &[&products]).await);
    let cat = Catalog::load(&mut src).await.expect("reload");
    assert!(!changed(&cat, &mut src, &[&orders]).await);

    src.0
        .batch_execute("ALTER TABLE customers DROP COLUMN phone")
        .await
        .unwrap();
    assert!(changed(&cat, &mut src, &[&customers]).await);

    src.0
        .batch_execute("DROP TABLE products; CREATE TABLE products (id serial PRIMARY KEY, name text, price numeric)")
        .await
        .unwrap();
    assert!(
        changed(&cat, &mut src, &[&products]).await,
        "same name and columns, another relation"
    );

    // Relations the snapshot does not know: compared by existence, by exact schema and name.
    let cat = Catalog::load(&mut src).await.expect("reload");
    let late = tr("public", "late");
    let odd = tr("public", "it's \\ late");
    let elsewhere = tr("app", "late");
    assert!(!changed(&cat, &mut src, &[&late, &odd, &elsewhere]).await);
    src.0
        .batch_execute("CREATE SEQUENCE late; CREATE TYPE app.late AS (x int)")
        .await
        .unwrap();
    assert!(
        !changed(&cat, &mut src, &[&late, &elsewhere]).await,
        "a sequence or a type is no relation a snapshot holds"
    );
    src.0
        .batch_execute("CREATE VIEW \"it's \\ late\" AS SELECT 1 AS one")
        .await
        .unwrap();
    assert!(changed(&cat, &mut src, &[&late, &odd]).await);
    assert!(!changed(&cat, &mut src, &[&late]).await);
    let cat = Catalog::load(&mut src).await.expect("reload");
    assert!(cat.relation(&odd).is_some(), "the re-read knows it");
    assert!(!changed(&cat, &mut src, &[&odd]).await);
    // A snapshot built by hand is never compared.
    let hand = Catalog::builder().build();
    assert!(!hand.worth_comparing(&[&late], &[]));
    assert!(cat.worth_comparing(&[&late], &[]));
    assert!(!hand
        .changed_on(&mut src, &[&odd], &[])
        .await
        .expect("compared"));

    // Operators and types the snapshot does not hold: compared by existence, and only when a
    // statement names them.
    let op = LiveName::Operator("<<~>>".into());
    let ty = LiveName::Type(tr("public", "late domain"));
    let elsewhere_ty = LiveName::Type(tr("app", "late domain"));
    assert!(!names_changed(&cat, &mut src, &[&op, &ty]).await);
    assert!(cat.worth_comparing(&[], &[&op]));
    assert!(!hand.worth_comparing(&[], &[&op]));
    src.0
        .batch_execute(
            "CREATE DOMAIN \"late domain\" AS text; \
             CREATE OPERATOR <<~>> (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq)",
        )
        .await
        .unwrap();
    assert!(names_changed(&cat, &mut src, &[&ty]).await);
    assert!(!names_changed(&cat, &mut src, &[&elsewhere_ty]).await);
    assert!(names_changed(&cat, &mut src, &[&op]).await);
    let cat = Catalog::load(&mut src).await.expect("reload");
    assert!(cat.operator_names.contains("<<~>>"), "the re-read knows it");
    assert!(!names_changed(&cat, &mut src, &[&op, &ty]).await);
}

async fn version_now(src: &mut Pg) -> String {
    Catalog::version_on(src).await.expect("version")
}

/// The fingerprint the schema watch compares: the one read with the snapshot until the schema
/// changes; temporary objects, VACUUM and ANALYZE leave it alone.
#[tokio::test]
async fn the_catalog_version_moves_with_the_schema_only() {
    let (_cluster, mut src, cat) = loaded().await;
    let version = cat.version.clone().expect("read with the snapshot");
    assert_eq!(version_now(&mut src).await, version);
    for sql in [
        "CREATE TEMP TABLE scratch (a int, b text)",
        "CREATE TEMP VIEW scratch_v AS SELECT a FROM scratch",
        "INSERT INTO orders (total) VALUES (5)",
        "VACUUM ANALYZE orders",
        "ANALYZE customers",
    ] {
        src.0.batch_execute(sql).await.unwrap();
    }
    assert_eq!(
        version_now(&mut src).await,
        version,
        "temporary objects and statistics"
    );
    for ddl in [
        "CREATE OR REPLACE VIEW customer_contacts AS SELECT name, ssn AS email FROM customers",
        "CREATE OR REPLACE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT 2 $$",
        "ALTER DOMAIN tidy ADD CHECK (ok_text(VALUE))",
        "CREATE SCHEMA later",
    ] {
        let before = version_now(&mut src).await;
        src.0.batch_execute(ddl).await.unwrap();
        assert_ne!(version_now(&mut src).await, before, "{ddl}");
    }
}
