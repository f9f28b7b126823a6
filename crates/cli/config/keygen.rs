//! `fts keygen`: each subcommand's flags as fts-trust's option structs. Nothing here
//! depends on another flag; the ids and groups were parsed by clap already.

use fts_trust::enrol::{CsrOptions, SignOptions};
use fts_trust::keygen::{CaOptions, ClientOptions, ServerOptions, SigningOptions, TimestampOptions};
use fts_trust::revocation::{CrlOptions, RevokeOptions};
use fts_trust::ticket_key::TicketKeyOptions;

use crate::args::KeygenCommand;

/// What one `fts keygen` subcommand is to do.
pub enum Keygen {
    Ca(CaOptions),
    Server(ServerOptions),
    Client(ClientOptions),
    Signing(SigningOptions),
    Timestamp(TimestampOptions),
    Csr(CsrOptions),
    Sign(SignOptions),
    Revoke(RevokeOptions),
    Crl(CrlOptions),
    Rotate(crate::args::KeygenRotateArgs),
    TicketKey(TicketKeyOptions),
}

impl Keygen {
    pub fn resolve(command: KeygenCommand) -> Self {
        match command {
            KeygenCommand::Ca(args) => {
                Keygen::Ca(CaOptions { dir: args.dir.dir, days: args.days, force: args.dir.force })
            }
            KeygenCommand::Server(args) => Keygen::Server(ServerOptions {
                dir: args.dir.dir,
                names: args.names,
                days: args.days,
                force: args.dir.force,
            }),
            KeygenCommand::Client(args) => Keygen::Client(ClientOptions {
                dir: args.dir.dir,
                id: args.id,
                groups: args.groups,
                days: args.days,
                force: args.dir.force,
            }),
            KeygenCommand::Signing(args) => Keygen::Signing(SigningOptions {
                dir: args.dir.dir,
                log_origin: args.log_origin,
                force: args.dir.force,
            }),
            KeygenCommand::Timestamp(args) => {
                Keygen::Timestamp(TimestampOptions { dir: args.dir.dir, force: args.dir.force })
            }
            KeygenCommand::Csr(args) => {
                Keygen::Csr(CsrOptions { dir: args.dir.dir, id: args.id, force: args.dir.force })
            }
            KeygenCommand::Sign(args) => Keygen::Sign(SignOptions {
                dir: args.dir.dir,
                csr: args.csr,
                groups: args.groups,
                days: args.days,
                force: args.dir.force,
            }),
            KeygenCommand::Revoke(args) => {
                Keygen::Revoke(RevokeOptions { dir: args.crl.dir, id: args.id, crl_days: args.crl.crl_days })
            }
            KeygenCommand::Rotate(args) => Keygen::Rotate(args),
            KeygenCommand::TicketKey(args) => Keygen::TicketKey(TicketKeyOptions {
                dir: args.dir.dir,
                rotate: args.rotate,
                force: args.dir.force,
            }),
            KeygenCommand::Crl(args) => {
                Keygen::Crl(CrlOptions { dir: args.crl.dir, crl_days: args.crl.crl_days })
            }
        }
    }
}
