//! config.toml → [`Config`]: serde catches syntax errors, unknown keys and the shape of
//! tables; every value is then checked here so the error can say what is expected and
//! point at the value's line and column (each value is read as `Spanned<toml::Value>`).

use crate::size::{format_size, parse_size};
use crate::{Config, ConfigError, error::line_col, validate_image_name};
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::{Spanned, Value};

mod tables;
use tables::{logs, network, sandbox, shares, vm_defaults};

pub const VCPU_RANGE: (u32, u32) = (1, 32);
pub const MEMORY_MIB_RANGE: (u64, u64) = (128, 1024 * 1024);
/// The smallest work disk worth formatting.
pub const DISK_MIN_BYTES: u64 = 64 * 1024 * 1024;
/// A sanity ceiling (64 TiB) that also keeps every size inside SQLite's signed integers.
pub const DISK_MAX_BYTES: u64 = 64 * 1024 * 1024 * 1024 * 1024;

type Field = Option<Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    firecracker_bin: Field,
    ssh_key_path: Field,
    default_image_name: Field,
    vmm: Field,
    firecracker_release_url: Field,
    vm_defaults: Option<RawVmDefaults>,
    network: Option<RawNetwork>,
    sandbox: Option<RawSandbox>,
    logs: Option<RawLogs>,
    images: Option<RawImages>,
    shares: Option<RawShares>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImages {
    warm: Field,
    standbys: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShares {
    fallback: Field,
    copy_max: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    console_max: Field,
    daemon_max: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSandbox {
    vmm_id_base: Field,
    vmm_id_count: Field,
    vmm_memory_overhead_mib: Field,
    vmm_pids_max: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    mode: Field,
    subnet: Field,
    dns: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVmDefaults {
    vcpu: Field,
    memory: Field,
    disk: Field,
}

const TOP_KEYS: &str = "firecracker_bin, ssh_key_path, default_image_name, vmm, \
                        firecracker_release_url, [vm_defaults], [network], [logs], [sandbox], [images], [shares]";
const VM_DEFAULTS_KEYS: &str = "vcpu, memory, disk";
const NETWORK_KEYS: &str = "mode, subnet, dns";
const LOGS_KEYS: &str = "console_max, daemon_max";
const SANDBOX_KEYS: &str = "vmm_id_base, vmm_id_count, vmm_memory_overhead_mib, vmm_pids_max";
const IMAGES_KEYS: &str = "warm, standbys";
const SHARES_KEYS: &str = "fallback, copy_max";

/// Parses one file; carries what every error needs.
struct Ctx<'a> {
    text: &'a str,
    path: &'a Path,
    home: Option<&'a Path>,
}

impl Ctx<'_> {
    fn error(&self, span: Range<usize>, key: Option<&str>, message: String) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            key: key.map(str::to_string),
            message,
        }
    }

    fn toml_error(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        let raw = err.message().trim_end();
        // Unknown keys: name the key and the table, and list what is allowed.
        if let Some(rest) = raw.strip_prefix("unknown field `") {
            let name = rest.split('`').next().unwrap_or_default();
            // serde lists the fields the table allows: that tells which table it was.
            let (key, allowed, table) = if rest.contains("`vcpu`") {
                (
                    format!("vm_defaults.{name}"),
                    VM_DEFAULTS_KEYS,
                    "in [vm_defaults]",
                )
            } else if rest.contains("`subnet`") {
                (format!("network.{name}"), NETWORK_KEYS, "in [network]")
            } else if rest.contains("`console_max`") {
                (format!("logs.{name}"), LOGS_KEYS, "in [logs]")
            } else if rest.contains("`warm`") && !rest.contains("`vcpu`") {
                (format!("images.{name}"), IMAGES_KEYS, "in [images]")
            } else if rest.contains("`copy_max`") {
                (format!("shares.{name}"), SHARES_KEYS, "in [shares]")
            } else if rest.contains("`vmm_id_base`") {
                (format!("sandbox.{name}"), SANDBOX_KEYS, "in [sandbox]")
            } else {
                (name.to_string(), TOP_KEYS, "at the top level")
            };
            return self.error(
                span,
                Some(&key),
                format!("unknown key `{name}` {table}; expected one of: {allowed}"),
            );
        }
        // toml's messages may span lines ("invalid string\nexpected ..."): keep ours on one.
        let message = raw
            .replace('\n', "; ")
            .replace("struct RawVmDefaults", "a table ([vm_defaults])")
            .replace("struct RawNetwork", "a table ([network])")
            .replace("struct RawLogs", "a table ([logs])")
            .replace("struct RawSandbox", "a table ([sandbox])")
            .replace("struct RawImages", "a table ([images])")
            .replace("struct RawShares", "a table ([shares])")
            .replace("struct RawConfig", "a table");
        self.error(span, None, format!("invalid TOML: {message}"))
    }

    fn string<'v>(
        &self,
        key: &str,
        v: &'v Spanned<Value>,
        expected: &str,
    ) -> Result<&'v str, ConfigError> {
        match v.get_ref() {
            Value::String(s) => Ok(s),
            other => Err(self.wrong_type(key, v, other, expected)),
        }
    }

    fn integer(&self, key: &str, v: &Spanned<Value>, expected: &str) -> Result<i64, ConfigError> {
        match v.get_ref() {
            Value::Integer(i) => Ok(*i),
            other => Err(self.wrong_type(key, v, other, expected)),
        }
    }

    fn wrong_type(
        &self,
        key: &str,
        v: &Spanned<Value>,
        found: &Value,
        expected: &str,
    ) -> ConfigError {
        let found = match found {
            Value::String(s) => format!("the string {s:?}"),
            Value::Integer(i) => format!("the integer {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Boolean(b) => format!("the boolean {b}"),
            Value::Datetime(d) => format!("the datetime {d}"),
            Value::Array(_) => "an array".to_string(),
            Value::Table(_) => "a table".to_string(),
        };
        self.error(
            v.span(),
            Some(key),
            format!("`{key}` must be {expected}, found {found}"),
        )
    }

    /// `~/` expansion plus the absolute-path rule; `bare_name_ok` admits a PATH lookup name.
    fn path(
        &self,
        key: &str,
        v: &Spanned<Value>,
        bare_name_ok: bool,
    ) -> Result<PathBuf, ConfigError> {
        let expected = if bare_name_ok {
            "an absolute path, a path starting with ~/, or a command name looked up on PATH"
        } else {
            "an absolute path or a path starting with ~/"
        };
        let s = self.string(key, v, &format!("a string: {expected}"))?;
        if let Some(rest) = s.strip_prefix("~/") {
            return match self.home {
                Some(home) => Ok(home.join(rest)),
                None => Err(self.error(
                    v.span(),
                    Some(key),
                    format!(
                        "`{key}` = {s:?} starts with ~/ but HOME is not set; write an absolute path"
                    ),
                )),
            };
        }
        let p = Path::new(s);
        if p.is_absolute() || (bare_name_ok && !s.is_empty() && !s.contains('/')) {
            return Ok(p.to_path_buf());
        }
        Err(self.error(
            v.span(),
            Some(key),
            format!("`{key}` = {s:?} is not {expected}"),
        ))
    }

    fn bounded(
        &self,
        key: &str,
        v: &Spanned<Value>,
        range: (u64, u64),
        what: &str,
    ) -> Result<u64, ConfigError> {
        let expected = format!("an integer from {} to {}{what}", range.0, range.1);
        let n = self.integer(key, v, &expected)?;
        match u64::try_from(n) {
            Ok(n) if (range.0..=range.1).contains(&n) => Ok(n),
            _ => Err(self.error(
                v.span(),
                Some(key),
                format!("`{key}` = {n} is out of range; expected {expected}"),
            )),
        }
    }

    fn disk(&self, key: &str, v: &Spanned<Value>) -> Result<u64, ConfigError> {
        self.size(
            key,
            v,
            (DISK_MIN_BYTES, DISK_MAX_BYTES),
            "\"8G\" or \"512M\"",
        )
    }

    /// A size string (`"8G"`) or a byte count, within `range`; `example` for the message.
    fn size(
        &self,
        key: &str,
        v: &Spanned<Value>,
        range: (u64, u64),
        example: &str,
    ) -> Result<u64, ConfigError> {
        let (min, max) = range;
        let expected = format!(
            "a size from {} to {} such as {example}, or an integer number of bytes",
            format_size(min),
            format_size(max)
        );
        let bytes = match v.get_ref() {
            Value::String(s) => parse_size(s)
                .map_err(|e| self.error(v.span(), Some(key), format!("`{key}`: {s:?} {e}")))?,
            Value::Integer(i) => u64::try_from(*i).map_err(|_| {
                self.error(
                    v.span(),
                    Some(key),
                    format!("`{key}` = {i} is negative; expected {expected}"),
                )
            })?,
            other => return Err(self.wrong_type(key, v, other, &expected)),
        };
        if !(min..=max).contains(&bytes) {
            return Err(self.error(
                v.span(),
                Some(key),
                format!(
                    "`{key}` = {} is out of range; expected {expected}",
                    format_size(bytes)
                ),
            ));
        }
        Ok(bytes)
    }
}

pub(crate) fn parse_config(
    text: &str,
    path: &Path,
    home: Option<&Path>,
) -> Result<Config, ConfigError> {
    let ctx = Ctx { text, path, home };
    let raw: RawConfig = toml::from_str(text).map_err(|e| ctx.toml_error(&e))?;
    let mut cfg = Config {
        source: Some(path.to_path_buf()),
        ..Config::default()
    };

    if let Some(v) = &raw.firecracker_bin {
        cfg.firecracker_bin = Some(ctx.path("firecracker_bin", v, true)?);
    }
    if let Some(v) = &raw.ssh_key_path {
        cfg.ssh_key_path = Some(ctx.path("ssh_key_path", v, false)?);
    }
    if let Some(v) = &raw.default_image_name {
        let key = "default_image_name";
        let name = ctx.string(key, v, "a string naming an image, such as \"minimal\"")?;
        validate_image_name(name).map_err(|e| {
            let why = format!("`{key}`: {name:?} is not a valid image name: {e}");
            ctx.error(v.span(), Some(key), why)
        })?;
        cfg.default_image_name = Some(name.to_string());
    }
    if let Some(v) = &raw.vmm {
        let expected = "one of \"auto\", \"qemu\", \"firecracker\"";
        let s = ctx.string("vmm", v, expected)?;
        cfg.vmm = s.parse().map_err(|_| {
            ctx.error(
                v.span(),
                Some("vmm"),
                format!("`vmm` = {s:?} is not {expected}"),
            )
        })?;
    }
    if let Some(v) = &raw.firecracker_release_url {
        let key = "firecracker_release_url";
        let expected = "an http:// or https:// URL, such as \"https://github.com/firecracker-microvm/firecracker/releases/download\"";
        let url = ctx.string(key, v, expected)?;
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        if !scheme_ok || url.chars().any(char::is_whitespace) || url.len() < "http://x".len() {
            return Err(ctx.error(
                v.span(),
                Some(key),
                format!("`{key}` = {url:?} is not {expected}"),
            ));
        }
        cfg.firecracker_release_url = Some(url.trim_end_matches('/').to_string());
    }
    if let Some(table) = &raw.vm_defaults {
        cfg.vm_defaults = vm_defaults(&ctx, table)?;
    }
    if let Some(table) = &raw.network {
        cfg.network = network(&ctx, table)?;
    }
    if let Some(table) = &raw.logs {
        cfg.logs = logs(&ctx, table)?;
    }
    if let Some(table) = &raw.sandbox {
        cfg.sandbox = sandbox(&ctx, table)?;
    }
    if let Some(v) = raw.images.as_ref().and_then(|t| t.warm.as_ref()) {
        let expected = "one of \"off\", \"on-first-use\"";
        let s = ctx.string("images.warm", v, expected)?;
        cfg.images.warm = s.parse().map_err(|()| {
            ctx.error(
                v.span(),
                Some("images.warm"),
                format!("`images.warm` = {s:?} is not {expected}"),
            )
        })?;
    }
    if let Some(v) = raw.images.as_ref().and_then(|t| t.standbys.as_ref()) {
        let range = (0, u64::from(crate::images::MAX_STANDBYS));
        let n = ctx.bounded("images.standbys", v, range, " (0 keeps none)")?;
        // Bounded above by MAX_STANDBYS, a u32.
        cfg.images.standbys = u32::try_from(n).unwrap_or(crate::images::MAX_STANDBYS);
    }
    if let Some(table) = &raw.shares {
        cfg.shares = shares(&ctx, table)?;
    }
    Ok(cfg)
}
