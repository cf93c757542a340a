//! MicroVM programs: reference-style Python (ASGI) programs in QEMU microVMs. See
//! `runtimes/python/PROTOCOL.md` for the guest side.
