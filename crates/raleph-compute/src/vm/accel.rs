//! Which accelerator QEMU gets (PROTOCOL.md §1), and the host TSC frequency the guest kernel
//! needs under TCG (§3).

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through a VMX/SVM KVM module.
    Kvm,
    /// QEMU's translator, with a 64 MiB translation cache.
    Tcg,
}

impl Accel {
    /// KVM only when `/dev/kvm` can be opened **and** `kvm_intel` or `kvm_amd` is loaded: a
    /// `/dev/kvm` served by `kvm_pvm` runs only PVM-enlightened kernels, and a stock kernel
    /// there crawls and then fails.
    pub fn detect(dev_kvm: &Path, sys_module: &Path) -> Accel {
        let usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev_kvm)
            .is_ok();
        let vmx_svm = ["kvm_intel", "kvm_amd"]
            .iter()
            .any(|m| sys_module.join(m).is_dir());
        if usable && vmx_svm {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    }

    pub fn host() -> Accel {
        Accel::detect(Path::new("/dev/kvm"), Path::new("/sys/module"))
    }

    /// `-accel` and `-cpu` values.
    pub fn qemu_args(self) -> (&'static str, &'static str) {
        match self {
            Accel::Kvm => ("kvm", "host"),
            Accel::Tcg => ("tcg,tb-size=64", "max"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Used when `/proc/cpuinfo` names no frequency.
pub const FALLBACK_TSC_KHZ: u64 = 2_000_000;

/// The host TSC in kHz from `/proc/cpuinfo` text (`cpu MHz : 2445.406` → 2445406).
pub fn tsc_khz_from_cpuinfo(cpuinfo: &str) -> Option<u64> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        if key.trim() != "cpu MHz" {
            return None;
        }
        let mhz: f64 = value.trim().parse().ok()?;
        (mhz.is_finite() && mhz > 0.0).then_some((mhz * 1000.0) as u64)
    })
}

pub fn host_tsc_khz() -> u64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| tsc_khz_from_cpuinfo(&text))
        .unwrap_or(FALLBACK_TSC_KHZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysfs(dev: bool, modules: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if dev {
            std::fs::write(dir.path().join("kvm"), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("module")).unwrap();
        for m in modules {
            std::fs::create_dir(dir.path().join("module").join(m)).unwrap();
        }
        dir
    }

    fn decide(dev: bool, modules: &[&str]) -> Accel {
        let dir = sysfs(dev, modules);
        Accel::detect(&dir.path().join("kvm"), &dir.path().join("module"))
    }

    #[test]
    fn accelerator_rule() {
        assert_eq!(decide(true, &["kvm", "kvm_intel"]), Accel::Kvm);
        assert_eq!(decide(true, &["kvm", "kvm_amd"]), Accel::Kvm);
        assert_eq!(decide(true, &["kvm", "kvm_pvm"]), Accel::Tcg);
        assert_eq!(decide(true, &[]), Accel::Tcg);
        assert_eq!(decide(false, &["kvm", "kvm_intel"]), Accel::Tcg);
        assert_eq!(Accel::Tcg.qemu_args(), ("tcg,tb-size=64", "max"));
        assert_eq!(Accel::Kvm.qemu_args(), ("kvm", "host"));
    }

    #[test]
    fn tsc_from_cpuinfo() {
        let text = "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2445.406\ncache size\t: 1 KB\n";
        assert_eq!(tsc_khz_from_cpuinfo(text), Some(2_445_406));
        assert_eq!(tsc_khz_from_cpuinfo("cpu MHz : nope\n"), None);
        assert_eq!(tsc_khz_from_cpuinfo("cpu MHz : -1\n"), None);
        assert_eq!(tsc_khz_from_cpuinfo(""), None);
    }
}
