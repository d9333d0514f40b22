//! The command line: `serve` runs a node, `token` mints a development token.
//!
//! Exit codes: 0 success, 1 the command failed while running (storage, network),
//! 2 bad usage or configuration (nothing was started or written).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

mod admin_client;
mod catalog;
pub mod certs;
mod cluster;
mod data;
mod stats;

use crate::auth::TokenKeys;
use crate::config::{Config, ConfigError, LogFormat, NamedSecret, Overrides, Settings};
use crate::domain::{Timestamp, UserId};
use crate::startup::{shutdown_signal, Server};

const EXAMPLES: &str = "\
Examples:
  Run one node with the local config (data in ./data, API on http://127.0.0.1:8080):
    pizza-orders serve
  Mint a token for alice and order a pizza to Berlin Mitte (the demo catalog's store there)
  for the day after tomorrow at 18:00 UTC (a day the store is closed answers 422):
    TOKEN=$(pizza-orders token --user alice)
    SLOT=$(date -u -d '+2 days' +%Y-%m-%dT18:00:00Z)
    curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\
      -d '{\"address\": \"Invalidenstr. 1\", \"postcode\": \"10115\",
           \"size\": \"large\", \"toppings\": [\"mushroom\"],
           \"delivery_slot\": \"'$SLOT'\"}' \\
      http://127.0.0.1:8080/v1/orders

Exit codes: 0 success, 1 failure while running, 2 bad usage or configuration.";

#[derive(Parser, Debug)]
#[command(name = "pizza-orders", version, about = "Pizza delivery orders: one binary, embedded redb store", after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node: the HTTP API on --listen, orders stored in --data-dir.
    #[command(after_help = "\
Settings come from defaults, then the config file, then PIZZA_ORDERS_* variables
(PIZZA_ORDERS_SLOTS__CAPACITY=40), then flags; --set slots.capacity=40 sets any of them.

Examples:
  pizza-orders serve
  pizza-orders serve --config /etc/pizza-orders/node.toml --data-dir /var/lib/pizza-orders
  pizza-orders serve --listen 127.0.0.1:9000 --set slots.capacity=5 --log-format json")]
    Serve(ServeArgs),
    /// Mint a signed bearer token (HS256) with the configured secret, for development and scripts.
    #[command(after_help = "\
Examples:
  pizza-orders token --user alice
  pizza-orders token --user ops --admin --ttl 1h
  pizza-orders token --user ana --staff --store berlin-mitte --ttl 12h")]
    Token(TokenArgs),
    /// Manage the Raft cluster through any node's admin API (needs an admin token).
    #[command(
        subcommand,
        after_help = "\
Examples (three local nodes, see config/node1.toml … node3.toml):
  pizza-orders cluster init --node http://127.0.0.1:7001 --config config/node1.toml
  pizza-orders cluster add --id 2 --addr 127.0.0.1:7002 --node http://127.0.0.1:7001 --config config/node1.toml
  pizza-orders cluster add --id 4 --addr 127.0.0.1:7004 --edge --node http://127.0.0.1:7001 --config config/node1.toml
  pizza-orders cluster status --node http://127.0.0.1:7002 --config config/node1.toml
  pizza-orders cluster remove --id 3 --config config/node1.toml --node http://127.0.0.1:7001"
    )]
    Cluster(ClusterCommand),
    /// The replicated catalog (menu, stores, hours, capacity, delivery areas): show, diff, apply.
    #[command(
        subcommand,
        after_help = "\
Examples:
  pizza-orders catalog show --config config/local.toml > catalog.toml
  pizza-orders catalog diff catalog.toml --config config/local.toml
  pizza-orders catalog apply catalog.toml --config config/local.toml --node http://127.0.0.1:8080
  pizza-orders catalog history --config config/local.toml

A file is checked whole before anything is sent; every problem names the store and field.
'apply' replaces the catalog only if the one it compared with is still in force.
Exit codes: 0 success, 1 the node failed or refused, 2 bad usage or an invalid file."
    )]
    Catalog(CatalogCommand),
    /// Back up the whole state, online, from any node (one consistent point in time).
    #[command(after_help = "\
Examples:
  pizza-orders backup --node http://127.0.0.1:7001 --config config/node1.toml --out orders.backup
  head -c 4096 orders.backup      # the header: cluster, revision, order count, checksum
  pizza-orders backup --node http://127.0.0.1:7001 --config config/node1.toml \\
    --out-dir /var/backups/pizza-orders --keep 48 --metrics-file /var/lib/node_exporter/pizza-orders-backup.prom

--out-dir names each file pizza-orders-<UTC time>-r<revision>.backup, reads it back whole, and only
then removes the oldest beyond --keep (the systemd timer pizza-orders-backup@.timer runs this).

Exit codes: 0 success, 1 failure (node unreachable, refused, disk), 2 bad usage,
3 the node sent data that does not verify. A failed backup leaves no file behind.")]
    Backup(data::BackupArgs),
    /// Restore a backup into an empty data directory (offline); the node starts as a one-node cluster.
    #[command(after_help = "\
Examples:
  pizza-orders restore --in orders.backup --data-dir /var/lib/pizza-orders --node-id 1 --advertise 10.0.0.1:8080
  pizza-orders serve --data-dir /var/lib/pizza-orders ...   # then 'cluster add' the other nodes

Exit codes: 0 success, 1 failure writing the data directory, 2 bad usage (for example a
non-empty directory without --force), 3 the backup is truncated, corrupt, foreign or of an
unknown format. The backup is verified completely before anything is written.")]
    Restore(data::RestoreArgs),
    /// Verify every invariant and index of a stopped node's data (online: GET /admin/check).
    #[command(after_help = "\
Examples:
  pizza-orders check --data-dir data
  pizza-orders check --data-dir data/node2 --config config/node2.toml --json

Exit codes: 0 no problems, 1 cannot run (the node is running), 2 bad usage, 3 problems found.")]
    Check(data::CheckArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(after_help = "\
Examples:
  pizza-orders completions bash | sudo tee /etc/bash_completion.d/pizza-orders
  pizza-orders completions zsh > \"${fpath[1]}/_pizza-orders\"
  pizza-orders completions fish > ~/.config/fish/completions/pizza-orders.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, made from the same definitions as --help.
    #[command(after_help = "\
Examples:
  pizza-orders man | man -l -
  pizza-orders man > /usr/local/share/man/man1/pizza-orders.1")]
    Man,
    /// Billing's export of orders as CSV or NDJSON, full or since a revision, from any node.
    #[command(after_help = "\
Examples:
  pizza-orders export --node http://127.0.0.1:7001 --config config/node1.toml --out all.csv
  pizza-orders export --since-revision 1234 --format ndjson --config config/local.toml

A full export is consistent as of one revision, printed at the end; pass it as
--since-revision next time to get exactly the orders created, changed or cancelled since.
Exit codes: 0 success, 1 failure (node unreachable, refused, broken transfer), 2 bad usage.")]
    Export(data::ExportArgs),
    /// Certificates for HTTPS and mutual TLS between nodes.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Page views, visitors, the ordering funnel and conversion per day (admin token).
    #[command(after_help = "\
Examples:
  pizza-orders stats
  pizza-orders stats --days 30 --node http://127.0.0.1:7001 --config config/node1.toml
  pizza-orders stats --json | jq '.days[] | {day, visitors}'

Exit codes: 0 success, 1 the node failed or refused, 2 bad usage.")]
    Stats {
        #[command(flatten)]
        admin: AdminArgs,
        /// Days back from today (today included).
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// Print the node's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create a development CA and one certificate per node (server and client use).
    #[command(after_help = "\
Writes DIR/ca.pem, DIR/ca-key.pem and DIR/node<i>.pem, DIR/node<i>-key.pem (keys mode 0600).
Every node certificate names localhost, 127.0.0.1, ::1 and node<i>, plus each --san.

Examples:
  pizza-orders certs init --out certs --nodes 3
  pizza-orders certs init --out /etc/pizza-orders/tls --nodes 3 --san pizza-0.pizza --san 10.0.0.5

Exit codes: 0 written, 1 cannot write, 2 bad usage (for example a file that already exists).")]
    Init {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// How many node certificates.
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Another DNS name or IP address for every node certificate (repeatable).
        #[arg(long, value_name = "NAME")]
        san: Vec<String>,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Initialise a new cluster on --node: alone, or with every --member given.
    Init {
        #[command(flatten)]
        admin: AdminArgs,
        /// A founding member as ID=HOST:PORT (repeatable); default: the node alone.
        #[arg(long = "member", value_name = "ID=HOST:PORT")]
        members: Vec<String>,
    },
    /// Add a node: it joins as a learner, catches up, then becomes a voter.
    Add {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        id: u64,
        /// The new node's advertised HOST:PORT.
        #[arg(long)]
        addr: String,
        /// Keep it as an edge replica: it replicates and serves reads, forwards writes, and
        /// never votes, so a slow or distant edge never slows a commit.
        #[arg(long)]
        edge: bool,
    },
    /// Remove a node (a voter, or an edge replica).
    Remove {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        id: u64,
    },
    /// Leader, term, commit and applied index, and each member's lag.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Print the catalog in force as a TOML catalog file (with its version as a comment).
    Show {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the admin API's JSON (version, applied_at, author, catalog).
        #[arg(long)]
        json: bool,
    },
    /// Show what applying FILE would change, as a unified diff.
    Diff {
        #[command(flatten)]
        admin: AdminArgs,
        file: PathBuf,
    },
    /// Validate FILE, then make it the catalog in force on every node (no restart).
    Apply {
        #[command(flatten)]
        admin: AdminArgs,
        file: PathBuf,
        /// Validate on the node without applying.
        #[arg(long)]
        dry_run: bool,
    },
    /// List every catalog applied; with --version, print that one.
    History {
        #[command(flatten)]
        admin: AdminArgs,
        #[arg(long)]
        version: Option<u64>,
    },
}

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Any node of the cluster.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
    pub node: String,
    /// Admin token; default: minted from the token secret in --config.
    #[arg(long, env = "PIZZA_ORDERS_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to trust for an https:// --node (for example certs/ca.pem).
    #[arg(long, env = "PIZZA_ORDERS_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Configuration file (TOML). Default: config/local.toml when it exists.
    #[arg(long, env = "PIZZA_ORDERS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override any setting, e.g. --set slots.capacity=40 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address for the HTTP API, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Directory holding the node's data.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The user id (the token's `sub`).
    #[arg(long)]
    pub user: String,
    /// Grant the admin API.
    #[arg(long)]
    pub admin: bool,
    /// A staff member's token: sees and moves the orders of --store (the kitchen page).
    #[arg(long, requires = "store")]
    pub staff: bool,
    /// The store a staff member works for (a store id of the catalog).
    #[arg(long, requires = "staff", value_name = "STORE")]
    pub store: Option<String>,
    /// How long the token is valid, e.g. 30m, 24h, 7d.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Mint N tokens, one per line, for users USER-0 … USER-(N-1) (load generators such as
    /// wrk, whose scripts cannot sign tokens).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub count: Option<u32>,
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Token(args) => token(args),
        Command::Cluster(command) => cluster::run(command),
        Command::Catalog(command) => catalog::run(command),
        Command::Backup(args) => data::backup(args),
        Command::Restore(args) => data::restore(args),
        Command::Check(args) => data::check(args),
        Command::Export(args) => data::export(args),
        Command::Stats { admin, days, json } => stats::run(admin, days, json),
        Command::Certs(CertsCommand::Init { out, nodes, san, days }) => match certs::init(&out, nodes, &san, days) {
            Ok(written) => {
                for file in written.files {
                    println!("{}", file.display());
                }
                ExitCode::SUCCESS
            }
            Err(e @ certs::CertsError::Write { .. }) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
            Err(e) => usage_error(e),
        },
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "pizza-orders", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man => match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write the manual page: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

pub(crate) fn usage_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn serve(args: ServeArgs) -> ExitCode {
    let overrides =
        Overrides { listen: args.listen, data_dir: args.data_dir, log_format: args.log_format, set: args.config.set };
    let config = match Settings::load(args.config.config.as_deref(), &overrides).and_then(Config::from_settings) {
        Ok(config) => config,
        Err(e) => return usage_error(e),
    };
    crate::telemetry::init(&config.log);
    // Always set: tokio would otherwise read TOKIO_WORKER_THREADS and panic on a bad value.
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(config.worker_threads).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    let result = runtime.block_on(async {
        let server = Server::bind(config).await?;
        // Before the announcement: a SIGTERM from here on drains the node.
        let shutdown = shutdown_signal();
        let addr = server.local_addr()?;
        // Scripts and tests read this line to learn the port when --listen ends in :0.
        let scheme = server.scheme();
        println!("pizza-orders listening on {scheme}://{addr}");
        let node = server.node();
        let ui = format!("{scheme}://{}/", crate::startup::browsable(addr));
        tracing::info!(
            node_id = node.id,
            role = %node.role(),
            data_dir = %node.config.data_dir.display(),
            data_format = crate::state::tables::DATA_FORMAT,
            listen = %addr,
            ui = %ui,
            "pizza-orders is serving; open the web UI at {ui}"
        );
        server.run(shutdown).await
    });
    match result {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The token secrets `--config` names, current first.
pub(crate) fn token_keys(args: &ConfigArgs) -> Result<TokenKeys, ConfigError> {
    let overrides = Overrides { set: args.set.clone(), ..Overrides::default() };
    let keys = Settings::load(args.config.as_deref(), &overrides).and_then(|s| NamedSecret::from_auth(&s.auth))?;
    Ok(TokenKeys::rotating(&keys))
}

fn token(args: TokenArgs) -> ExitCode {
    let keys = match token_keys(&args.config) {
        Ok(keys) => keys,
        Err(e) => return usage_error(e),
    };
    let user = match UserId::parse(&args.user) {
        Ok(user) => user,
        Err(e) => return usage_error(format!("--user: {e}")),
    };
    let store = match args.store.as_deref().map(crate::domain::StoreId::parse).transpose() {
        Ok(store) => store,
        Err(e) => return usage_error(format!("--store: {e}")),
    };
    let now = Timestamp::now();
    let Some(count) = args.count else {
        return match keys.mint_as(&user, args.admin, store.as_ref(), args.ttl, now) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(ConfigError::Invalid(e.to_string())),
        };
    };
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for n in 0..count {
        let minted = UserId::parse(&format!("{}-{n}", args.user))
            .map_err(|e| format!("--user with --count: {e}"))
            .and_then(|user| keys.mint_as(&user, args.admin, store.as_ref(), args.ttl, now).map_err(|e| e.to_string()));
        match minted {
            Ok(token) => {
                if writeln!(out, "{token}").is_err() {
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => return usage_error(ConfigError::Invalid(e)),
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
