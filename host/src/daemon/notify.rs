//! systemd's readiness protocol (`Type=notify`): `READY=1` once every
//! pipeline runs, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1`
//! when a stop begins, sent as datagrams to `$NOTIFY_SOCKET` (a path, or an
//! abstract name starting with `@`).
//!
//! Owns: only those messages; without `NOTIFY_SOCKET` (not under systemd)
//! it does nothing. It must not decide when the agent is ready.

use std::os::unix::net::UnixDatagram;

/// Tells the service manager `state` (e.g. `READY=1`), if one listens. A
/// failure is logged once per message and otherwise ignored: readiness is
/// a courtesy to the manager, not a reason to stop.
pub fn notify(state: &str) {
    if let Some(target) = std::env::var_os("NOTIFY_SOCKET") {
        notify_to(&target.to_string_lossy(), state);
    }
}

fn notify_to(target: &str, state: &str) {
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = state.as_bytes();
        match target.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(bytes, &address)
            }
            None => socket.send_to(bytes, target),
        }
    });
    if let Err(error) = sent {
        tracing::warn!(state, error = %error, "Could not notify the service manager.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket_systemd_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1");
        let mut buffer = [0u8; 64];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("cryptolake-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let abstract_listener = UnixDatagram::bind_addr(&address).unwrap();
        notify_to(&format!("@{name}"), "STOPPING=1");
        let n = abstract_listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
    }
}
