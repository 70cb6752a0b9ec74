//! pg_shred's one error type, and its mapping to PostgreSQL errors (SQLSTATE, message, detail,
//! hint). No variant carries key bytes, plaintext or a subject identifier.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::crypto::typed::PlainType;
use crate::crypto::CryptoError;

/// Which text/binary input path a malformed envelope came from (they have distinct SQLSTATEs).
#[derive(Debug, Clone, Copy)]
pub enum Input {
    Text,
    Binary,
}

#[derive(Debug, Clone)]
pub enum ShredError {
    /// A failure of the pure core during seal/open.
    Crypto(CryptoError),
    /// A malformed envelope given to the type's input or receive function.
    BadInput(Input, CryptoError),
    /// A NULL where a value is required (`subject`, `context`).
    NullArgument(&'static str),
    /// `shred.root_key_file` is not set.
    NoRootKey,
    /// The root key file cannot be used; the string says why (never the bytes).
    RootKeyFile(String),
    /// `shred.root_key_command` failed; the string says how (never its output).
    RootKeyCommand(String),
    /// Both `shred.root_key_file` and `shred.root_key_command` are set.
    RootKeySourceConflict,
    /// The root key does not match the key-check value stored for its version.
    RootKeyMismatch(i32),
    /// DEKs are wrapped under this root-key version, but the keyring does not hold it.
    VersionNotInKeyring(i32),
    /// This root-key version was retired: nothing may be wrapped under it any more.
    VersionRetired(i32),
    /// The operation is refused in the current state; the string says why.
    NotReady(String),
    /// A named object (a root-key version, a protected table) does not exist; the string says
    /// which.
    NotFound(String),
    /// A relation named by OID does not exist.
    NoSuchRelation,
    /// A trigger function called outside the trigger it was made for; the string says how.
    TriggerProtocol(&'static str),
    /// The keyring's newest root-key version (first) is older than a registered one (second).
    KeyringBehind(i32, i32),
    /// The library was not loaded through `shared_preload_libraries`.
    NotPreloaded,
    /// An argument has a value the function does not accept; the string says which.
    InvalidParameter(&'static str),
    /// A sealed value is opened as another type than it was sealed as.
    WrongType { sealed: &'static str, wanted: &'static str },
    /// The opened plaintext is not text in this database.
    NotText,
    /// The opened text has a character the database encoding cannot represent.
    NotRepresentable,
    /// In a SQL_ASCII database, the named argument is not valid UTF-8.
    NotUtf8(&'static str),
    /// The subject is longer than the maximum.
    SubjectTooLong(usize),
    /// A concurrent transaction changed the key store in a way this one cannot see.
    Serialization(&'static str),
    /// The key store is in a state pg_shred never leaves it in.
    KeyStore(String),
    /// A state pg_shred never gets into (a bug).
    Internal(&'static str),
    /// DROP EXTENSION / DROP SCHEMA would destroy this many DEKs.
    DropWithKeys(i64),
    /// A blind-index lookup names a context that has no key (nothing was ever indexed in it).
    NoBlindIndexKey,
    /// The current role may not do this to a protected table; the string says what.
    NotOwner(String),
    /// A write through a plaintext view would change a GENERATED ALWAYS identity column.
    GeneratedAlways,
    /// A sealed value names a key id this key store never held (nor erased).
    UnknownKey,
    /// A sealed numeric or jsonb plaintext does not parse as its type (altered before sealing).
    BadTypedText(&'static str),
    /// Sealing for this purpose (its name) needs the data subject's confirmed consent, which
    /// it does not have (never given, not yet confirmed, or withdrawn).
    NoConsent(String),
    /// The data subject is under a legal hold (`shred.hold`) with this id. Nothing was erased.
    Held(i64),
    /// A key store write (a new DEK, an erasure) on a Citus worker, or in a statement Citus
    /// runs on a worker.
    CitusWorker,
    /// A blind-index lookup on a Citus worker, which holds none of the coordinator's terms.
    CitusLookup,
    /// A key store table (its name) that Citus distributes other than as a reference table.
    CitusTable(String),
    /// A key store table (its name) that is a Citus reference table without a copy
    /// (placement) on this node.
    NoPlacement(String),
}

impl From<CryptoError> for ShredError {
    fn from(e: CryptoError) -> Self {
        ShredError::Crypto(e)
    }
}

/// Longest data subject identifier, in bytes (it is indexed and bound into every wrapped DEK).
pub const MAX_SUBJECT_LEN: usize = 1024;

const ROOT_KEY_HINT: &str =
    "Set shred.root_key_file to a file of mode 0600, or shred.root_key_command to a command that prints the key (superuser; postgresql.conf or ALTER SYSTEM, then reload). Either holds one 32-byte root key, raw or base64, or a keyring of version:base64 lines.";

impl ShredError {
    fn into_report(self) -> ErrorReport {
        use PgSqlErrorCode::*;
        let fname = "pg_shred";
        match self {
            ShredError::Crypto(CryptoError::AuthenticationFailed) => ErrorReport::new(
                ERRCODE_DATA_EXCEPTION,
                "pg_shred: could not open the sealed value",
                fname,
            )
            .set_detail("Authentication failed: the value was altered, moved to another row or column, sealed for another data subject, or opened with another context than it was sealed with.")
            .set_hint("Pass the same context to shred.open as to shred.seal. In a protected table, shred.check() lists the values that do not open."),
            ShredError::Crypto(e @ CryptoError::PlaintextTooLarge { .. }) => {
                ErrorReport::new(ERRCODE_PROGRAM_LIMIT_EXCEEDED, format!("pg_shred: {e}"), fname)
            }
            ShredError::Crypto(e @ (CryptoError::UnwrapFailed | CryptoError::MalformedWrappedKey)) => {
                ErrorReport::new(ERRCODE_DATA_CORRUPTED, format!("pg_shred: {e}"), fname)
                    .set_detail("The key store row of this value's DEK does not authenticate under the configured root key.")
                    .set_hint("The key store was altered outside pg_shred, or the root key differs from the one that wrapped it.")
            }
            ShredError::Crypto(
                e @ (CryptoError::MalformedEnvelope(_)
                | CryptoError::UnsupportedVersion(_)
                | CryptoError::MalformedPlaintext(_)),
            ) => {
                ErrorReport::new(ERRCODE_DATA_CORRUPTED, format!("pg_shred: {e}"), fname)
            }
            ShredError::Crypto(e @ (CryptoError::InvalidRootKey(_) | CryptoError::InvalidKeyring { .. })) => {
                ErrorReport::new(ERRCODE_CONFIG_FILE_ERROR, format!("pg_shred: {e}"), fname)
                    .set_hint(ROOT_KEY_HINT)
            }
            ShredError::Crypto(e @ CryptoError::Random) => {
                ErrorReport::new(ERRCODE_INTERNAL_ERROR, format!("pg_shred: {e}"), fname)
            }
            ShredError::BadInput(kind, e) => ErrorReport::new(
                match kind {
                    Input::Text => ERRCODE_INVALID_TEXT_REPRESENTATION,
                    Input::Binary => ERRCODE_INVALID_BINARY_REPRESENTATION,
                },
                format!("invalid input for type shred.sealed: {e}"),
                fname,
            )
            .set_hint("A shred.sealed value is made by shred.seal(); its text form is shred1:<base64> (shred2:<base64> for typed values)."),
            ShredError::NullArgument(what) => ErrorReport::new(
                ERRCODE_NULL_VALUE_NOT_ALLOWED,
                format!("pg_shred: {what} must not be NULL"),
                fname,
            ),
            ShredError::NoRootKey => ErrorReport::new(
                ERRCODE_CONFIG_FILE_ERROR,
                "pg_shred: no root key is configured",
                fname,
            )
            .set_hint(ROOT_KEY_HINT),
            ShredError::RootKeyFile(why) => ErrorReport::new(
                ERRCODE_CONFIG_FILE_ERROR,
                format!("pg_shred: cannot use the file named by shred.root_key_file: {why}"),
                fname,
            )
            .set_hint(ROOT_KEY_HINT),
            ShredError::RootKeyMismatch(version) => ErrorReport::new(
                ERRCODE_CONFIG_FILE_ERROR,
                format!("pg_shred: the configured root key is not root-key version {version} of this database"),
                fname,
            )
            .set_detail("Its key-check value differs from the one stored when this version was first used.")
            .set_hint("The keyring (shred.root_key_file or shred.root_key_command) holds another key under this version than the one this database was sealed with. pg_shred refuses to seal, open or erase until the right key is configured."),
            ShredError::RootKeyCommand(why) => ErrorReport::new(
                ERRCODE_CONFIG_FILE_ERROR,
                format!("pg_shred: shred.root_key_command failed: {why}"),
                fname,
            )
            .set_hint(ROOT_KEY_HINT),
            ShredError::RootKeySourceConflict => ErrorReport::new(
                ERRCODE_CONFIG_FILE_ERROR,
                "pg_shred: both shred.root_key_file and shred.root_key_command are set",
                fname,
            )
            .set_hint("Set only one of them."),
            ShredError::VersionNotInKeyring(version) => ErrorReport::new(
                ERRCODE_CONFIG_FILE_ERROR,
                format!("pg_shred: root-key version {version} is not in the keyring"),
                fname,
            )
            .set_detail("DEKs of this database are wrapped under it; they cannot be unwrapped without it.")
            .set_hint(format!("Put version {version} back into the keyring (shred.root_key_file or shred.root_key_command) and reload; remove it only after CALL shred.rotate_root_key() has rewrapped every DEK (see the view shred.root_key_status).")),
            ShredError::VersionRetired(version) => ErrorReport::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("pg_shred: root-key version {version} is retired"),
                fname,
            )
            .set_hint("Add a newer root-key version to the keyring and reload; new DEKs are wrapped under the newest one."),
            ShredError::InvalidParameter(why) => {
                ErrorReport::new(ERRCODE_INVALID_PARAMETER_VALUE, format!("pg_shred: {why}"), fname)
            }
            ShredError::WrongType { sealed, wanted } => ErrorReport::new(
                ERRCODE_DATATYPE_MISMATCH,
                format!("pg_shred: the sealed value holds {sealed}, not {wanted}"),
                fname,
            )
            .set_hint("Open it with the shred.open function of its type: shred.open (text), shred.open_bytea, shred.open_integer, shred.open_bigint, shred.open_numeric, shred.open_date, shred.open_timestamptz or shred.open_jsonb."),
            ShredError::NotPreloaded => ErrorReport::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "pg_shred: the library is not in shared_preload_libraries",
                fname,
            )
            .set_detail("Until pg_shred is loaded, PostgreSQL shows the values of shred.root_key_file and shred.root_key_command to every role.")
            .set_hint("Add pg_shred to shared_preload_libraries in postgresql.conf and restart the server."),
            ShredError::NotReady(why) => ErrorReport::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("pg_shred: {why}"),
                fname,
            ),
            ShredError::NotFound(what) => ErrorReport::new(ERRCODE_UNDEFINED_OBJECT, format!("pg_shred: {what}"), fname),
            ShredError::NoSuchRelation => {
                ErrorReport::new(ERRCODE_UNDEFINED_TABLE, "pg_shred: the relation does not exist", fname)
            }
            ShredError::TriggerProtocol(why) => {
                ErrorReport::new(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, format!("pg_shred: {why}"), fname)
            }
            ShredError::KeyringBehind(newest, registered) => ErrorReport::new(
                ERRCODE_CONFIG_FILE_ERROR,
                format!("pg_shred: the keyring's newest root-key version {newest} is older than registered version {registered}; add a version numbered above {registered}"),
                fname,
            ),
            ShredError::NotText => ErrorReport::new(
                ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                "pg_shred: the sealed value is not valid text",
                fname,
            )
            .set_detail("Its plaintext contains a zero byte or is not valid UTF-8.")
            .set_hint("It was sealed from bytea: open it with shred.open_bytea()."),
            ShredError::NotRepresentable => ErrorReport::new(
                ERRCODE_UNTRANSLATABLE_CHARACTER,
                "pg_shred: the opened text has a character the database encoding cannot represent",
                fname,
            )
            .set_hint("Open it with shred.open_bytea(): the plaintext is UTF-8."),
            ShredError::NotUtf8(what) => ErrorReport::new(
                ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                format!("pg_shred: the {what} is not valid UTF-8"),
                fname,
            )
            .set_hint("In a SQL_ASCII database, text given to pg_shred must be UTF-8; seal other bytes as bytea."),
            ShredError::SubjectTooLong(len) => ErrorReport::new(
                ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("pg_shred: a subject of {len} bytes exceeds the maximum of {MAX_SUBJECT_LEN} bytes"),
                fname,
            )
            .set_hint("Use an opaque identifier such as 'customer:42'."),
            ShredError::Serialization(what) => ErrorReport::new(
                ERRCODE_T_R_SERIALIZATION_FAILURE,
                format!("pg_shred: could not serialize access to the key store: {what}"),
                fname,
            )
            .set_hint("Retry the transaction."),
            ShredError::DropWithKeys(n) => ErrorReport::new(
                ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                format!("pg_shred: dropping the extension would destroy the DEKs of {n} data subject(s)"),
                fname,
            )
            .set_detail("Every value sealed for them would become unreadable: it erases them all.")
            .set_hint("To do this on purpose, take a pg_dump first, then SET shred.allow_drop_with_keys = on in this session."),
            ShredError::NoBlindIndexKey => ErrorReport::new(
                ERRCODE_UNDEFINED_OBJECT,
                "pg_shred: no blind-index key exists for this context",
                fname,
            )
            .set_detail("Nothing was ever indexed under this context, so no value can match it.")
            .set_hint("Contexts are '<table>.<column>' of a searchable column of a protected table (shred.protect(..., searchable => ...)); shred.blind_token() creates the key of a new context."),
            ShredError::UnknownKey => ErrorReport::new(
                ERRCODE_UNDEFINED_OBJECT,
                "pg_shred: the sealed value's key is not in this key store",
                fname,
            )
            .set_detail("No DEK with the value's key id exists here and none was erased here: the value comes from another database or key store, or its envelope was altered.")
            .set_hint(if crate::pg::citus::installed() {
                "Open the value where it was sealed. On a Citus cluster, the key store must be on every node: run SELECT shred.distribute_key_store() on the coordinator (docs/citus.md)."
            } else {
                "Open the value where it was sealed. In a protected table, shred.check() counts such values; after restoring an older backup, shred.replay_erasures() records the erasures made since."
            }),
            ShredError::BadTypedText(what) => ErrorReport::new(
                ERRCODE_DATA_CORRUPTED,
                format!("pg_shred: a sealed {what} value does not parse as {what}"),
                fname,
            )
            .set_detail("The plaintext was not produced by PostgreSQL's output function for the type. It is not shown."),
            ShredError::NoConsent(purpose) => ErrorReport::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("pg_shred: purpose \"{purpose}\" requires the data subject's confirmed consent, which it does not have"),
                fname,
            )
            .set_detail("Nothing was sealed: the consent was never requested, is not confirmed (or its token expired), was withdrawn, or ended with an erasure of the whole subject.")
            .set_hint("Record it with shred.request_consent() and shred.confirm_consent(); check it with shred.has_consent()."),
            ShredError::Held(hold_id) => ErrorReport::new(
                ERRCODE_OBJECT_IN_USE,
                format!("pg_shred: the data subject is under legal hold {hold_id}"),
                fname,
            )
            .set_detail("Nothing was erased: a held data subject is erased by nothing (shred.erase of one subject or an array, erasure by purpose, shred.withdraw_consent, shred.replay_erasures, retention) until its hold is released.")
            .set_hint("shred.holds lists the holds and their sealed reasons; shred.release_hold(subject) (shred_admin) releases one once the legal claim is settled."),
            ShredError::CitusWorker => ErrorReport::new(
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "pg_shred: the key store is written on the Citus coordinator only",
                fname,
            )
            .set_detail("Key store writes start on the coordinator, which writes every node's copy in one distributed transaction and keeps the legal holds, consents and blind-index terms an erasure and a first seal also need; on a worker, or in a worker's part of a distributed statement, they would miss them. Nothing was sealed or erased.")
            .set_hint("Seal new data subjects and erase on the coordinator, in statements Citus does not push down to the workers; shred.create_keys() on the coordinator makes DEKs ahead of a statement that seals on the workers (see docs/citus.md)."),
            ShredError::CitusLookup => ErrorReport::new(
                ERRCODE_FEATURE_NOT_SUPPORTED,
                "pg_shred: blind-index lookups run on the Citus coordinator only",
                fname,
            )
            .set_detail("The blind-index terms are kept on the coordinator: a worker would find no row. Citus ran this lookup on a worker, as it does in a query routed to one shard.")
            .set_hint("Look the row tokens up in a statement of their own (SELECT shred.blind_match(...)), then query the table with them; a lookup over all shards (without the distribution column in the WHERE clause) runs on the coordinator (see docs/citus.md)."),
            ShredError::CitusTable(table) => ErrorReport::new(
                ERRCODE_FEATURE_NOT_SUPPORTED,
                format!("pg_shred: the key store table shred.{table} is distributed by Citus, but not as a reference table"),
                fname,
            )
            .set_detail("Every node must hold every DEK and erasure record: the key store's tables can only be Citus reference tables.")
            .set_hint("Run SELECT undistribute_table(...) on it, then SELECT shred.distribute_key_store() on the coordinator (see docs/citus.md)."),
            ShredError::NoPlacement(table) => ErrorReport::new(
                ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("pg_shred: this node holds no copy of the key store table shred.{table}"),
                fname,
            )
            .set_detail("The key store is a set of Citus reference tables, and Citus has not copied them to this node yet.")
            .set_hint("On the coordinator, run SELECT replicate_reference_tables(); a coordinator must be in Citus's metadata (SELECT citus_set_coordinator_host(...))."),
            ShredError::GeneratedAlways => ErrorReport::new(
                ERRCODE_GENERATED_ALWAYS,
                "pg_shred: a GENERATED ALWAYS identity column can only be updated to DEFAULT",
                fname,
            )
            .set_detail("The table keeps the column's value; its protected values would be sealed for another data subject."),
            ShredError::NotOwner(what) => ErrorReport::new(
                ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("pg_shred: {what}"),
                fname,
            ),
            ShredError::Internal(why) => {
                ErrorReport::new(ERRCODE_INTERNAL_ERROR, format!("pg_shred: internal error: {why}"), fname)
            }
            ShredError::KeyStore(why) => {
                ErrorReport::new(ERRCODE_INTERNAL_ERROR, format!("pg_shred: key store: {why}"), fname)
            }
        }
    }

    /// Refuse (42804) to open a value sealed as `sealed` as `wanted` unless
    /// [`PlainType::opens`] allows it.
    pub fn check_type(sealed: Option<PlainType>, wanted: PlainType) -> Result<(), ShredError> {
        if wanted.opens(sealed) {
            return Ok(());
        }
        Err(ShredError::WrongType { sealed: sealed.map(|t| t.name()).unwrap_or("text or bytea"), wanted: wanted.name() })
    }

    /// Report this error as a WARNING (same message, detail and hint) and carry on.
    pub fn warn(self) {
        self.into_report().report(PgLogLevel::WARNING);
    }

    /// Raise this error as a PostgreSQL ERROR. Rust values on the stack (key material among
    /// them) are dropped, and so zeroized, while the error unwinds.
    pub fn report(self) -> ! {
        self.into_report().report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

/// Unwrap a result or raise its error.
pub trait OrReport<T> {
    fn or_report(self) -> T;
}

impl<T, E: Into<ShredError>> OrReport<T> for Result<T, E> {
    fn or_report(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.into().report(),
        }
    }
}
