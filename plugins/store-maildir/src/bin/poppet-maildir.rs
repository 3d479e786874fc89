//! `poppet-maildir`: the maildir store's operator tool, for moving a mail tree over from Dovecot
//! or Courier before any client connects (book: "Migrating from Dovecot or Courier").
//!
//! ```text
//! poppet-maildir uidl-report --root /var/mail --source dovecot --format '%08Xu%08Xv'
//! poppet-maildir warm --root /var/mail
//! ```
//! Exit status: 0 all well, 1 problems found (a UIDL that would change, a broken maildir), 2 a
//! usage error (clap's own code for bad arguments).

use clap::{Parser, Subcommand, ValueEnum};
use poppet_store_maildir::tools::{self, ReportOptions};
use poppet_store_maildir::{DOVECOT_DEFAULT_FORMAT, UidlFormat, UidlSource};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

#[derive(Debug, Parser)]
#[command(
    name = "poppet-maildir",
    version,
    about = "Poppet maildir store: migration tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Per maildir and in total: how many messages keep the UIDL the old server served under the
    /// given setting, and how many would change (clients would download those again).
    UidlReport {
        /// The mail tree to walk (every maildir below it).
        #[arg(long)]
        root: PathBuf,
        /// The `uidl_source` setting Poppet would run with.
        #[arg(long, value_enum)]
        source: Source,
        /// The `uidl_format` setting (Dovecot's `pop3_uidl_format`), with `--source dovecot`.
        #[arg(long)]
        format: Option<String>,
        /// The old server, when not the one `--source` names (default: the same; for `native`,
        /// whichever list each maildir has).
        #[arg(long, value_enum)]
        old: Option<Source>,
        /// The old Dovecot's `pop3_uidl_format`, when it differs from `--format`.
        #[arg(long)]
        old_format: Option<String>,
    },
    /// Builds the sizes cache of every maildir below the root, so the first login reads no
    /// message bodies, and reports broken maildirs. Changes no mail.
    Warm {
        /// The mail tree to walk.
        #[arg(long)]
        root: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Source {
    Native,
    Dovecot,
    Courier,
}

fn source(kind: Source, format: Option<&str>) -> Result<UidlSource, String> {
    Ok(match kind {
        Source::Native => UidlSource::Native,
        Source::Courier => UidlSource::Courier,
        Source::Dovecot => {
            let text = format.unwrap_or(DOVECOT_DEFAULT_FORMAT);
            UidlSource::Dovecot(UidlFormat::parse(text).map_err(|e| format!("--format: {e}"))?)
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = match cli.command {
        Command::UidlReport {
            root,
            source: kind,
            format,
            old,
            old_format,
        } => {
            if format.is_some() && kind != Source::Dovecot {
                eprintln!("poppet-maildir: --format only applies to --source dovecot");
                return ExitCode::from(2);
            }
            let new = source(kind, format.as_deref());
            let old_text = old_format.or(format);
            let old = old.map(|k| source(k, old_text.as_deref())).transpose();
            match (new, old) {
                (Ok(source), Ok(old)) => {
                    let options = ReportOptions { root, source, old };
                    tools::uidl_report(&options, &mut out).map(|(_, attention)| attention)
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("poppet-maildir: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        Command::Warm { root } => {
            tools::warm(&root, SystemTime::now(), &mut out).map(|counts| counts.problems > 0)
        }
    };
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            eprintln!("poppet-maildir: {e}");
            ExitCode::from(1)
        }
    }
}
