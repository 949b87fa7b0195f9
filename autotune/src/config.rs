//! Configs (named integer meta-parameters) and config spaces (candidates with pruning).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// A named set of integer meta-parameters, such as `BLOCK_SIZE=1024 num_warps=4`.
///
/// Parameters are kept sorted by name (byte order), so equal configs print, hash and serialize
/// identically. The text form is `name=value` items separated by whitespace; [`Display`](fmt::Display)
/// writes it and [`FromStr`] reads it back. The empty config prints as the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, i64>", into = "BTreeMap<String, i64>")]
pub struct Config {
    params: BTreeMap<String, i64>,
}

impl Config {
    /// The empty config.
    pub fn new() -> Self {
        Self::default()
    }

    /// This config with `name` set to `value`.
    ///
    /// # Panics
    /// If `name` is not a valid parameter name (see [`ParseError::BadName`]); names are normally
    /// literals in the caller's code. Use [`Config::try_set`] for names from outside.
    pub fn with(mut self, name: &str, value: i64) -> Self {
        if let Err(e) = self.try_set(name, value) {
            panic!("{e}");
        }
        self
    }

    /// Sets `name` to `value`, replacing any earlier value.
    pub fn try_set(&mut self, name: &str, value: i64) -> Result<(), ParseError> {
        check_name(name)?;
        self.params.insert(name.to_owned(), value);
        Ok(())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.params.get(name).copied()
    }

    /// The parameters in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.params.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

fn check_name(name: &str) -> Result<(), ParseError> {
    let ok = name.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ParseError::BadName { name: name.to_owned() })
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

impl FromStr for Config {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let mut config = Config::new();
        for item in text.split_whitespace() {
            let (name, value) = item.split_once('=').ok_or_else(|| ParseError::MissingEquals { item: item.into() })?;
            check_name(name)?;
            let value =
                value.parse().map_err(|_| ParseError::BadValue { name: name.to_owned(), value: value.to_owned() })?;
            if config.params.insert(name.to_owned(), value).is_some() {
                return Err(ParseError::Duplicate { name: name.to_owned() });
            }
        }
        Ok(config)
    }
}

impl TryFrom<BTreeMap<String, i64>> for Config {
    type Error = ParseError;

    fn try_from(params: BTreeMap<String, i64>) -> Result<Self, ParseError> {
        params.keys().try_for_each(|name| check_name(name))?;
        Ok(Config { params })
    }
}

impl From<Config> for BTreeMap<String, i64> {
    fn from(config: Config) -> Self {
        config.params
    }
}

/// A keep-predicate of a [`ConfigSpace`].
type Keep = Box<dyn Fn(&Config) -> bool + Send + Sync>;

/// Candidate configs and the predicates that prune invalid ones before anything is measured
/// (Triton's `prune_configs_by`): a config is measured only if every predicate keeps it.
#[derive(Default)]
pub struct ConfigSpace {
    candidates: Vec<Config>,
    keep: Vec<Keep>,
}

impl ConfigSpace {
    /// A space of the given candidates.
    pub fn new(candidates: impl IntoIterator<Item = Config>) -> Self {
        Self { candidates: candidates.into_iter().collect(), keep: Vec::new() }
    }

    /// The Cartesian product of the given axes, the last axis varying fastest:
    /// `grid(&[("BLOCK_SIZE", &[256, 512]), ("num_warps", &[4, 8])])` has four candidates.
    ///
    /// # Panics
    /// If an axis name is not a valid parameter name.
    pub fn grid(axes: &[(&str, &[i64])]) -> Self {
        let mut configs = vec![Config::new()];
        for (name, values) in axes {
            configs = configs.iter().flat_map(|c| values.iter().map(|v| c.clone().with(name, *v))).collect();
        }
        Self::new(configs)
    }

    /// Adds a predicate: only configs for which `keep` returns true survive.
    pub fn retain(mut self, keep: impl Fn(&Config) -> bool + Send + Sync + 'static) -> Self {
        self.keep.push(Box::new(keep));
        self
    }

    /// The surviving candidates, in order, without duplicates.
    pub fn configs(&self) -> Vec<Config> {
        let mut out: Vec<Config> = Vec::new();
        for c in &self.candidates {
            if self.keep.iter().all(|keep| keep(c)) && !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }
}

impl fmt::Debug for ConfigSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSpace")
            .field("candidates", &self.candidates)
            .field("predicates", &self.keep.len())
            .finish()
    }
}
