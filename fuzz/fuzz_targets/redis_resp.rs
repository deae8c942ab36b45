//! Any bytes handed to a pooled Redis connection's `req_packed_command` (the caller's, so
//! untrusted): the session tracking reads the command names out of them without a panic
//! or an allocation that a length in them chooses. And for well-formed packed commands
//! (the `redis` crate's own packing of arguments taken from the input), what it decides
//! depends on the command name only.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_redis::fuzzing::{scan_commands, scan_commands_closed_transactions};
use pool_redis::redis;

fn packed(args: &[&[u8]]) -> Vec<u8> {
    let mut cmd = redis::Cmd::new();
    for a in args {
        cmd.arg(*a);
    }
    cmd.get_packed_command()
}

fuzz_target!(|data: &[u8]| {
    // Raw bytes: any answer, never a panic.
    let _ = scan_commands(data);
    let _ = scan_commands_closed_transactions(data);

    // Well-formed: the arguments are the input split at NUL bytes.
    let args: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    if args.is_empty() || args[0].is_empty() {
        return;
    }
    let whole = packed(&args);
    let name_only = packed(&args[..1]);
    assert_eq!(scan_commands(&whole), scan_commands(&name_only), "{args:?}");
    // Two commands in a row read as both (a pipeline): plain only if each is.
    let mut two = whole.clone();
    two.extend_from_slice(&packed(&[b"GET", b"k"]));
    let one = scan_commands(&whole);
    if one == "plain" {
        assert_eq!(scan_commands(&two), "plain", "{args:?}");
    } else if one == "session" {
        assert_eq!(scan_commands(&two), "session", "{args:?}");
    }
});
