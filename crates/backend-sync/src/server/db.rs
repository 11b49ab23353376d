//! The server's database, SQLite or PostgreSQL behind one small interface: statements with
//! `$1`-style parameters, rows of typed values, and transactions of several statements. The SQL
//! is written once for both (the portable subset: `ON CONFLICT DO NOTHING`, `RETURNING`, no
//! `SUM` without a cast); for SQLite, `$n` becomes `?n` and `BYTEA` becomes `BLOB`.
//!
//! Why tokio-postgres and not sqlx: the server needs a handful of statements, not a query
//! builder or compile-time checking against a live database (which CI would have to provide at
//! build time); tokio-postgres is the smaller dependency (no macros, no second runtime
//! abstraction), builds in well under a minute, and its rows-affected answers are what
//! exactly-once booking needs. SQLite uses rusqlite as the ledger does.
//!
//! SQLite: one connection (WAL, `synchronous=FULL`) used from blocking threads; SQLite has one
//! writer at a time anyway. PostgreSQL: a small pool of connections made on demand; a broken
//! connection is dropped and replaced.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::pause::PauseHook;

/// Errors of the database layer, one per cause.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A value of an unexpected type came back.
    #[error("column {0}: unexpected type")]
    Type(usize),
    /// The blocking task running a SQLite statement died.
    #[error("database worker failed")]
    Worker,
}

/// A parameter or column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// An integer (BIGINT).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (BYTEA / BLOB).
    Bytes(Vec<u8>),
    /// NULL of integer type.
    NullInt,
    /// NULL of text type.
    NullText,
    /// NULL of bytes type.
    NullBytes,
}

impl Val {
    fn to_sqlite(&self) -> rusqlite::types::Value {
        use rusqlite::types::Value;
        match self {
            Self::Int(i) => Value::Integer(*i),
            Self::Text(t) => Value::Text(t.clone()),
            Self::Bytes(b) => Value::Blob(b.clone()),
            Self::NullInt | Self::NullText | Self::NullBytes => Value::Null,
        }
    }

    fn to_pg(&self) -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
        match self {
            Self::Int(i) => Box::new(*i),
            Self::Text(t) => Box::new(t.clone()),
            Self::Bytes(b) => Box::new(b.clone()),
            Self::NullInt => Box::new(None::<i64>),
            Self::NullText => Box::new(None::<String>),
            Self::NullBytes => Box::new(None::<Vec<u8>>),
        }
    }
}

/// A row of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Val>);

impl Row {
    fn get(&self, i: usize) -> Result<&Val, DbError> {
        self.0.get(i).ok_or(DbError::Type(i))
    }

    /// Column `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, DbError> {
        match self.get(i)? {
            Val::Int(v) => Ok(*v),
            _ => Err(DbError::Type(i)),
        }
    }

    /// Column `i` as an integer or NULL.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, DbError> {
        match self.get(i)? {
            Val::Int(v) => Ok(Some(*v)),
            Val::NullInt | Val::NullText | Val::NullBytes => Ok(None),
            _ => Err(DbError::Type(i)),
        }
    }

    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        match self.get(i)? {
            Val::Text(v) => Ok(v.clone()),
            _ => Err(DbError::Type(i)),
        }
    }

    /// Column `i` as text or NULL.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, DbError> {
        match self.get(i)? {
            Val::Text(v) => Ok(Some(v.clone())),
            Val::NullInt | Val::NullText | Val::NullBytes => Ok(None),
            _ => Err(DbError::Type(i)),
        }
    }

    /// Column `i` as bytes.
    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, DbError> {
        match self.get(i)? {
            Val::Bytes(v) => Ok(v.clone()),
            _ => Err(DbError::Type(i)),
        }
    }

    /// Column `i` as bytes or NULL.
    pub fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, DbError> {
        match self.get(i)? {
            Val::Bytes(v) => Ok(Some(v.clone())),
            Val::NullInt | Val::NullText | Val::NullBytes => Ok(None),
            _ => Err(DbError::Type(i)),
        }
    }
}

/// One statement of a transaction.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// SQL with `$n` parameters.
    pub sql: String,
    /// Parameters.
    pub params: Vec<Val>,
}

impl Stmt {
    /// A statement.
    pub fn new(sql: impl Into<String>, params: Vec<Val>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// A SQLite file (`sqlite:PATH` or a plain path).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL URL (`postgres://...` or `postgresql://...`).
    Postgres(String),
}

impl DbUrl {
    /// Read a `--db` argument.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Self::Postgres(s.to_string())
        } else {
            Self::Sqlite(s.strip_prefix("sqlite:").unwrap_or(s).into())
        }
    }
}

/// The database.
#[derive(Clone)]
pub enum Db {
    /// SQLite.
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    /// PostgreSQL.
    Postgres(Arc<PgPool>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Db::Sqlite",
            Self::Postgres(_) => "Db::Postgres",
        })
    }
}

/// A pool of PostgreSQL connections.
pub struct PgPool {
    url: String,
    idle: Mutex<Vec<tokio_postgres::Client>>,
    limit: Semaphore,
}

impl PgPool {
    async fn get(&self) -> Result<PgConn<'_>, DbError> {
        let permit = self.limit.acquire().await.map_err(|_| DbError::Worker)?;
        let reuse = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut found = None;
            while let Some(c) = idle.pop() {
                if !c.is_closed() {
                    found = Some(c);
                    break;
                }
            }
            found
        };
        let client = match reuse {
            Some(c) => c,
            None => {
                let (client, conn) =
                    tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                client
            }
        };
        Ok(PgConn {
            pool: self,
            client: Some(client),
            _permit: permit,
        })
    }
}

struct PgConn<'a> {
    pool: &'a PgPool,
    client: Option<tokio_postgres::Client>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl PgConn<'_> {
    fn client(&mut self) -> Result<&mut tokio_postgres::Client, DbError> {
        self.client.as_mut().ok_or(DbError::Worker)
    }
}

impl Drop for PgConn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && !c.is_closed()
        {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(c);
        }
    }
}

fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?").replace("BYTEA", "BLOB")
}

fn sqlite_row(r: &rusqlite::Row<'_>, n: usize) -> Result<Row, DbError> {
    use rusqlite::types::ValueRef;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(match r.get_ref(i)? {
            ValueRef::Null => Val::NullText,
            ValueRef::Integer(v) => Val::Int(v),
            ValueRef::Real(_) => return Err(DbError::Type(i)),
            ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Val::Bytes(b.to_vec()),
        });
    }
    Ok(Row(out))
}

fn pg_row(r: &tokio_postgres::Row) -> Result<Row, DbError> {
    use tokio_postgres::types::Type;
    let mut out = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let t = col.type_();
        let v = if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?
                .map_or(Val::NullInt, Val::Int)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?
                .map_or(Val::NullInt, |v| Val::Int(i64::from(v)))
        } else if *t == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?
                .map_or(Val::NullInt, |v| Val::Int(i64::from(v)))
        } else if *t == Type::TEXT || *t == Type::VARCHAR || *t == Type::NAME {
            r.try_get::<_, Option<String>>(i)?
                .map_or(Val::NullText, Val::Text)
        } else if *t == Type::BYTEA {
            r.try_get::<_, Option<Vec<u8>>>(i)?
                .map_or(Val::NullBytes, Val::Bytes)
        } else {
            return Err(DbError::Type(i));
        };
        out.push(v);
    }
    Ok(Row(out))
}

fn pg_params(params: &[Val]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> {
    params.iter().map(Val::to_pg).collect()
}

fn pg_refs(
    boxed: &[Box<dyn tokio_postgres::types::ToSql + Sync + Send>],
) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    boxed
        .iter()
        .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

impl Db {
    /// Open the database a URL names (creating a SQLite file if needed).
    pub async fn open(url: &DbUrl, pool_size: usize) -> Result<Self, DbError> {
        match url {
            DbUrl::Sqlite(path) => {
                let path = path.clone();
                let conn = tokio::task::spawn_blocking(move || -> Result<_, DbError> {
                    let c = rusqlite::Connection::open(path)?;
                    c.busy_timeout(std::time::Duration::from_secs(30))?;
                    c.execute_batch(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                    )?;
                    Ok(c)
                })
                .await
                .map_err(|_| DbError::Worker)??;
                Ok(Self::Sqlite(Arc::new(Mutex::new(conn))))
            }
            DbUrl::Postgres(u) => {
                let pool = PgPool {
                    url: u.clone(),
                    idle: Mutex::new(Vec::new()),
                    limit: Semaphore::new(pool_size.max(1)),
                };
                // Connect once now so a wrong URL fails at start.
                drop(pool.get().await?);
                Ok(Self::Postgres(Arc::new(pool)))
            }
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Run a query and return its rows.
    pub async fn query(&self, sql: &str, params: Vec<Val>) -> Result<Vec<Row>, DbError> {
        match self {
            Self::Sqlite(c) => {
                let c = Arc::clone(c);
                let sql = sqlite_sql(sql);
                tokio::task::spawn_blocking(move || -> Result<Vec<Row>, DbError> {
                    let conn = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let n = stmt.column_count();
                    let p: Vec<_> = params.iter().map(Val::to_sqlite).collect();
                    let mut rows = stmt.query(rusqlite::params_from_iter(p))?;
                    let mut out = Vec::new();
                    while let Some(r) = rows.next()? {
                        out.push(sqlite_row(r, n)?);
                    }
                    Ok(out)
                })
                .await
                .map_err(|_| DbError::Worker)?
            }
            Self::Postgres(pool) => {
                let mut conn = pool.get().await?;
                let boxed = pg_params(&params);
                let rows = conn.client()?.query(sql, &pg_refs(&boxed)).await?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// Run one statement; rows affected.
    pub async fn execute(&self, sql: &str, params: Vec<Val>) -> Result<u64, DbError> {
        let r = self
            .transaction(vec![Stmt::new(sql, params)], &PauseHook::none())
            .await?;
        Ok(r.first().copied().unwrap_or(0))
    }

    /// Run statements in one transaction; rows affected by each. `hook` may pause (tests) between
    /// the last statement and the commit.
    pub async fn transaction(
        &self,
        stmts: Vec<Stmt>,
        hook: &PauseHook,
    ) -> Result<Vec<u64>, DbError> {
        match self {
            Self::Sqlite(c) => {
                let c = Arc::clone(c);
                let hook = hook.clone();
                tokio::task::spawn_blocking(move || -> Result<Vec<u64>, DbError> {
                    let mut conn = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let tx =
                        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let mut out = Vec::with_capacity(stmts.len());
                    for s in &stmts {
                        let mut stmt = tx.prepare_cached(&sqlite_sql(&s.sql))?;
                        let p: Vec<_> = s.params.iter().map(Val::to_sqlite).collect();
                        out.push(
                            u64::try_from(stmt.execute(rusqlite::params_from_iter(p))?)
                                .unwrap_or(0),
                        );
                    }
                    hook.maybe_pause_blocking();
                    tx.commit()?;
                    Ok(out)
                })
                .await
                .map_err(|_| DbError::Worker)?
            }
            Self::Postgres(pool) => {
                let mut conn = pool.get().await?;
                let client = conn.client()?;
                let tx = client.transaction().await?;
                let mut out = Vec::with_capacity(stmts.len());
                for s in &stmts {
                    let boxed = pg_params(&s.params);
                    out.push(tx.execute(s.sql.as_str(), &pg_refs(&boxed)).await?);
                }
                hook.maybe_pause_async().await;
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Run a script of DDL (migrations) in one transaction, under a lock so that several
    /// servers starting at once migrate once.
    pub async fn script(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Self::Sqlite(c) => {
                let c = Arc::clone(c);
                let sql = sqlite_sql(sql);
                tokio::task::spawn_blocking(move || -> Result<(), DbError> {
                    let mut conn = c.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let tx =
                        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    tx.execute_batch(&sql)?;
                    tx.commit()?;
                    Ok(())
                })
                .await
                .map_err(|_| DbError::Worker)?
            }
            Self::Postgres(pool) => {
                let mut conn = pool.get().await?;
                let client = conn.client()?;
                let tx = client.transaction().await?;
                tx.batch_execute(sql).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }
}
