//! Many rows into one table in few round trips, inside the caller's transaction: PostgreSQL's
//! `COPY … FROM STDIN`, SQLite's multi-row `VALUES`. For rows the gateway builds itself (score
//! imports, their events); OneRoster records have their own loader in `staging`.

use std::fmt::Write as _;

use super::{Arg, StoreError, Tx};

/// SQLite allows 32766 parameters per statement; stay under it.
const SQLITE_MAX_PARAMS: usize = 30_000;

/// Inserts `rows` (each one value per column, in `columns` order) into `table`. Table and
/// column names are the gateway's own constants, never input.
pub async fn insert(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Arg>],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    debug_assert!(rows.iter().all(|r| r.len() == columns.len()));
    match tx {
        Tx::Sqlite(_) => insert_with_values(tx, table, columns, rows).await,
        Tx::Postgres(t) => {
            let mut buf = String::with_capacity(rows.len() * columns.len() * 16);
            for row in rows {
                for (i, value) in row.iter().enumerate() {
                    if i > 0 {
                        buf.push('\t');
                    }
                    copy_value(&mut buf, value);
                }
                buf.push('\n');
            }
            let mut copy = t
                .copy_in_raw(&format!("COPY {table} ({}) FROM STDIN", columns.join(", ")))
                .await?;
            copy.send(buf.into_bytes()).await?;
            copy.finish().await?;
            Ok(())
        }
    }
}

async fn insert_with_values(
    tx: &mut Tx,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Arg>],
) -> Result<(), StoreError> {
    let per_statement = (SQLITE_MAX_PARAMS / columns.len()).clamp(1, 1000);
    let placeholders = format!("({})", vec!["?"; columns.len()].join(","));
    for chunk in rows.chunks(per_statement) {
        // Plain `?`: SQLite looks `$n` names up one by one, which is quadratic here.
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            columns.join(", "),
            vec![placeholders.as_str(); chunk.len()].join(",")
        );
        let params: Vec<Arg> = chunk.iter().flatten().cloned().collect();
        tx.execute(&sql, &params).await?;
    }
    Ok(())
}

/// One value in COPY's text format.
fn copy_value(buf: &mut String, value: &Arg) {
    match value {
        Arg::I64(v) => write!(buf, "{v}").expect("write to String"),
        Arg::OptI64(Some(v)) => write!(buf, "{v}").expect("write to String"),
        Arg::F64(v) | Arg::OptF64(Some(v)) => write!(buf, "{v}").expect("write to String"),
        Arg::Text(s) => copy_field(buf, Some(s)),
        Arg::OptText(s) => copy_field(buf, s.as_deref()),
        Arg::Bool(b) | Arg::OptBool(Some(b)) => buf.push(if *b { 't' } else { 'f' }),
        Arg::Date(d) | Arg::OptDate(Some(d)) => write!(buf, "{d}").expect("write to String"),
        Arg::Time(t) => write!(buf, "{}", t.to_rfc3339()).expect("write to String"),
        // bytea's hex form, its backslash escaped for COPY.
        Arg::OptBytes(Some(b)) => write!(buf, "\\\\x{}", hex::encode(b)).expect("write to String"),
        Arg::OptI64(None)
        | Arg::OptF64(None)
        | Arg::OptBool(None)
        | Arg::OptDate(None)
        | Arg::OptBytes(None) => buf.push_str("\\N"),
    }
}

/// Escapes a value for COPY's text format (`None`: NULL).
pub fn copy_field(buf: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        buf.push_str("\\N");
        return;
    };
    // Copied a run at a time: most values hold nothing to escape (char by char, this was the
    // largest single cost of staging a score import).
    let mut rest = value;
    while let Some(at) = rest
        .bytes()
        .position(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        buf.push_str(&rest[..at]);
        buf.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        });
        rest = &rest[at + 1..];
    }
    buf.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_would_end_a_field_or_row() {
        let mut buf = String::new();
        copy_field(&mut buf, Some("a\tb\nc\\d\re"));
        assert_eq!(buf, "a\\tb\\nc\\\\d\\re");
        let mut buf = String::new();
        for v in [
            Arg::OptText(None),
            Arg::OptI64(Some(-3)),
            Arg::OptBool(Some(false)),
            Arg::F64(2.5),
        ] {
            copy_value(&mut buf, &v);
            buf.push('|');
        }
        assert_eq!(buf, "\\N|-3|f|2.5|");
    }
}
