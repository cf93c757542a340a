//! The QEMU command line of one VM (PROTOCOL.md §4). The device list, their order, `-m`,
//! `-smp`, `-cpu`, `-M` and the image files are the same for a template and its restores;
//! only the network options and `-incoming` differ.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::accel::Accel;
use super::proto::GUEST_API_ADDR;

/// Niceness of every QEMU process.
pub const NICENESS: &str = "10";

#[derive(Debug, Clone)]
pub struct QemuCommand {
    /// `nice`, when found: it execs QEMU, so the child PID stays QEMU's.
    pub nice: Option<PathBuf>,
    pub qemu: PathBuf,
    pub accel: Accel,
    pub memory_mib: u32,
    pub vcpus: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub rootfs: PathBuf,
    /// Kernel command line.
    pub append: String,
    pub port_name: String,
    /// The VM's folder: control and QMP sockets, serial log.
    pub dir: PathBuf,
    /// `restrict=on` unless the program has internet.
    pub internet: bool,
    /// Relay command run by slirp for each guest connection to the guest API address, e.g.
    /// `/usr/bin/busybox nc 127.0.0.1 4024`.
    pub guest_api_relay: Option<String>,
    /// Restore from this snapshot file.
    pub incoming: Option<PathBuf>,
}

pub fn ctl_socket(dir: &Path) -> PathBuf {
    dir.join("ctl.sock")
}

pub fn qmp_socket(dir: &Path) -> PathBuf {
    dir.join("qmp.sock")
}

pub fn serial_log(dir: &Path) -> PathBuf {
    dir.join("serial.log")
}

/// QEMU's stdout and stderr.
pub fn stderr_log(dir: &Path) -> PathBuf {
    dir.join("qemu.log")
}

impl QemuCommand {
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(nice) = &self.nice {
            argv.extend([nice.into(), "-n".into(), NICENESS.into()]);
        }
        argv.push(self.qemu.clone().into());
        let (accel, cpu) = self.accel.qemu_args();
        let mut netdev = format!(
            "user,id=n0,net=10.0.2.0/24,restrict={}",
            if self.internet { "off" } else { "on" }
        );
        if let Some(relay) = &self.guest_api_relay {
            netdev.push_str(&format!(
                ",guestfwd=tcp:{GUEST_API_ADDR}:80-cmd:{}",
                opt(relay)
            ));
        }
        let s = |v: &str| OsString::from(v);
        argv.extend([
            s("-accel"),
            s(accel),
            s("-cpu"),
            s(cpu),
            s("-M"),
            s("microvm,acpi=on"),
            s("-m"),
            s(&self.memory_mib.to_string()),
            s("-smp"),
            s(&self.vcpus.to_string()),
            s("-nodefaults"),
            s("-no-user-config"),
            s("-no-reboot"),
            s("-display"),
            s("none"),
            s("-serial"),
            s(&format!("file:{}", path(&serial_log(&self.dir)))),
            s("-kernel"),
            s(&path(&self.kernel)),
            s("-initrd"),
            s(&path(&self.initrd)),
            s("-append"),
            s(&self.append),
            s("-drive"),
            s(&format!(
                "id=root,file={},format=raw,if=none,readonly=on",
                opt(&path(&self.rootfs))
            )),
            s("-device"),
            s("virtio-blk-device,drive=root"),
            s("-netdev"),
            s(&netdev),
            s("-device"),
            s("virtio-net-device,netdev=n0"),
            s("-device"),
            s("virtio-serial-device,id=vser0"),
            s("-chardev"),
            s(&format!(
                "socket,id=ctl,path={},server=on,wait=off",
                opt(&path(&ctl_socket(&self.dir)))
            )),
            s("-device"),
            s(&format!(
                "virtserialport,bus=vser0.0,chardev=ctl,name={}",
                opt(&self.port_name)
            )),
            s("-device"),
            s("virtio-rng-device"),
            s("-qmp"),
            s(&format!(
                "unix:{},server=on,wait=off",
                opt(&path(&qmp_socket(&self.dir)))
            )),
        ]);
        if let Some(snapshot) = &self.incoming {
            argv.extend([
                s("-incoming"),
                s(&format!("exec:cat {}", shell_quote(&path(snapshot)))),
            ]);
        }
        argv
    }
}

/// `exec:` migration URI writing a snapshot.
pub fn migrate_to(file: &Path) -> String {
    format!("exec:cat > {}", shell_quote(&path(file)))
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A value inside a QEMU `key=value,…` option: commas are doubled.
fn opt(value: &str) -> String {
    value.replace(',', ",,")
}

/// Single-quoted for `/bin/sh` (QEMU runs `exec:` URIs through it).
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> QemuCommand {
        QemuCommand {
            nice: Some("/usr/bin/nice".into()),
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            memory_mib: 256,
            vcpus: 2,
            kernel: "/rt/vmlinuz".into(),
            initrd: "/rt/initrd.gz".into(),
            rootfs: "/rt/a,b/rootfs.squashfs".into(),
            append: "console=ttyS0 tsc_early_khz=2000000".into(),
            port_name: "org.raleph.control".into(),
            dir: "/w/vms/1".into(),
            internet: false,
            guest_api_relay: Some("/usr/bin/busybox nc 127.0.0.1 4024".into()),
            incoming: None,
        }
    }

    fn joined(c: &QemuCommand) -> Vec<String> {
        c.argv()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    fn after<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn cold_boot_without_internet() {
        let argv = joined(&command());
        assert_eq!(
            argv[..4],
            ["/usr/bin/nice", "-n", "10", "qemu-system-x86_64"]
        );
        assert_eq!(after(&argv, "-accel"), ["tcg,tb-size=64"]);
        assert_eq!(after(&argv, "-cpu"), ["max"]);
        assert_eq!(after(&argv, "-m"), ["256"]);
        assert_eq!(after(&argv, "-smp"), ["2"]);
        assert_eq!(
            after(&argv, "-netdev"),
            [
                "user,id=n0,net=10.0.2.0/24,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:/usr/bin/busybox nc 127.0.0.1 4024"
            ]
        );
        assert_eq!(
            after(&argv, "-drive"),
            ["id=root,file=/rt/a,,b/rootfs.squashfs,format=raw,if=none,readonly=on"]
        );
        assert_eq!(
            after(&argv, "-chardev"),
            ["socket,id=ctl,path=/w/vms/1/ctl.sock,server=on,wait=off"]
        );
        assert_eq!(
            after(&argv, "-qmp"),
            ["unix:/w/vms/1/qmp.sock,server=on,wait=off"]
        );
        assert_eq!(after(&argv, "-serial"), ["file:/w/vms/1/serial.log"]);
        assert_eq!(
            after(&argv, "-device"),
            [
                "virtio-blk-device,drive=root",
                "virtio-net-device,netdev=n0",
                "virtio-serial-device,id=vser0",
                "virtserialport,bus=vser0.0,chardev=ctl,name=org.raleph.control",
                "virtio-rng-device"
            ]
        );
        assert!(argv.contains(&"-no-reboot".to_string()));
        assert!(after(&argv, "-incoming").is_empty());
    }

    #[test]
    fn restore_with_internet_keeps_the_devices() {
        let cold = joined(&command());
        let mut c = command();
        c.internet = true;
        c.guest_api_relay = None;
        c.incoming = Some("/w/templates/it's.state".into());
        let argv = joined(&c);
        assert_eq!(
            after(&argv, "-netdev"),
            ["user,id=n0,net=10.0.2.0/24,restrict=off"]
        );
        assert_eq!(
            after(&argv, "-incoming"),
            [r"exec:cat '/w/templates/it'\''s.state'"]
        );
        for flag in [
            "-device", "-m", "-smp", "-cpu", "-M", "-kernel", "-initrd", "-drive",
        ] {
            assert_eq!(after(&argv, flag), after(&cold, flag), "{flag}");
        }
        c.accel = Accel::Kvm;
        c.nice = None;
        let argv = joined(&c);
        assert_eq!(argv[0], "qemu-system-x86_64");
        assert_eq!(after(&argv, "-accel"), ["kvm"]);
        assert_eq!(after(&argv, "-cpu"), ["host"]);
    }

    #[test]
    fn migration_uri() {
        assert_eq!(migrate_to(Path::new("/t/a b")), "exec:cat > '/t/a b'");
    }
}
