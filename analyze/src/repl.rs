//! The interactive prompt of `capsnap query` when no SQL is given.
//!
//! Statements end with `;` and may span lines. `\d` lists the tables,
//! `\q` quits. History is kept in `~/.capsnap_history`. When stdin is not a
//! terminal, it is read whole and run as SQL.

use crate::{Format, Workspace, describe_tables};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".capsnap_history"))
}

/// Reads SQL from the terminal (or stdin) until end of input.
pub async fn interactive(
    ws: &Workspace,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), crate::Error> {
    if !std::io::stdin().is_terminal() {
        let mut sql = String::new();
        std::io::stdin().read_to_string(&mut sql)?;
        ws.run(&sql, format, out).await?;
        return Ok(());
    }
    let mut editor = DefaultEditor::new().map_err(|e| std::io::Error::other(e.to_string()))?;
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    eprintln!("capsnap SQL prompt: end statements with ';', \\d lists tables, \\q quits");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "capsnap> "
        } else {
            "     ... "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && (trimmed == "\\q" || trimmed == "quit" || trimmed == "exit")
                {
                    break;
                }
                if buffer.is_empty() && trimmed == "\\d" {
                    describe_tables(out)?;
                    out.flush()?;
                    continue;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if trimmed.ends_with(';') {
                    let _ = editor.add_history_entry(buffer.trim());
                    let started = std::time::Instant::now();
                    match ws.run(&buffer, format, out).await {
                        Ok(rows) => {
                            eprintln!("{rows} rows in {:.3}s", started.elapsed().as_secs_f64())
                        }
                        Err(e) => eprintln!("capsnap: {}", e.chain()),
                    }
                    buffer.clear();
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(std::io::Error::other(e.to_string()).into()),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
