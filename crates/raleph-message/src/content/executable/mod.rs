//! PROGRAM and INSTANCE content: the schema the reference validates, and the executable fields
//! the node checks and indexes.
//!
//! The rules follow the aleph-message content models of the newest release (1.7): field names,
//! types, bounds, defaults, which objects refuse unknown keys, and the cross-field rules of
//! instances. Values are coerced the way the reference's validation library does in its lax
//! mode (`"yes"`, `1` or `1.0` are booleans, `"2"` or `2.0` are integers) except where the model
//! asks for strict integers (volume sizes, GPU counts); strings, enums and item hashes are never
//! coerced. The first violation found is reported, named by its path (`resources.vcpus`,
//! `volumes[2].size_mib`).
//!
//! `schema` holds the models, `fields` the generic checks they are written with, and
//! `python_regex` the syntax check of the one field that holds a Python regular expression.

mod fields;
mod python_regex;
mod schema;

pub use schema::{ExecutableContent, VolumeRef};
pub(crate) use schema::{parse_instance, parse_program};

#[cfg(test)]
mod tests;
