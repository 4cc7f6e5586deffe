//! Which CPU cores the workers run on, and pinning a thread to one.

/// The cores a service may use. Worker `c` (cluster `c`) is pinned to
/// `cores[c % cores.len()]`; more clusters than cores is allowed (they
/// time-share, with a warning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    cores: Vec<usize>,
}

impl Device {
    /// Every core this process may run on (its affinity mask on Linux,
    /// otherwise `0..available_parallelism`).
    pub fn all() -> Device {
        let cores = allowed_cores().unwrap_or_else(|| (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect());
        Device { cores }
    }

    /// Exactly these cores (ids as the OS numbers them), e.g. a subset for
    /// one of several services sharing a machine. `init_device` refuses an
    /// empty list.
    pub fn cores(cores: Vec<usize>) -> Device {
        Device { cores }
    }

    pub fn core_ids(&self) -> &[usize] {
        &self.cores
    }

    /// The core cluster `c` runs on.
    pub fn core_for(&self, cluster: usize) -> Option<usize> {
        (!self.cores.is_empty()).then(|| self.cores[cluster % self.cores.len()])
    }
}

#[cfg(target_os = "linux")]
fn allowed_cores() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set, and
    // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        set
    };
    // SAFETY: CPU_ISSET reads the set within its CPU_SETSIZE bits.
    let cores: Vec<usize> = (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect();
    (!cores.is_empty()).then_some(cores)
}

#[cfg(not(target_os = "linux"))]
fn allowed_cores() -> Option<Vec<usize>> {
    None
}

/// The largest core id pinning can name.
#[cfg(target_os = "linux")]
pub(crate) const MAX_CORE: usize = libc::CPU_SETSIZE as usize - 1;
#[cfg(not(target_os = "linux"))]
pub(crate) const MAX_CORE: usize = usize::MAX;

/// Pins the calling thread to `core`; Err(reason) when the OS refuses or
/// cannot pin.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(core: usize) -> Result<(), String> {
    if core > MAX_CORE {
        return Err(format!("core {core} is beyond the {} cores pinning can name", MAX_CORE + 1));
    }
    // SAFETY: as in allowed_cores; CPU_SET writes bit `core` < CPU_SETSIZE,
    // and sched_setaffinity reads the set we pass.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(format!("cannot pin to core {core}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Pinning is only implemented on Linux: always Err(reason) here.
#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(core: usize) -> Result<(), String> {
    Err(format!("thread pinning is only implemented on Linux; core {core} not pinned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_at_least_one_core() {
        let d = Device::all();
        assert!(!d.core_ids().is_empty());
        assert_eq!(d.core_for(d.core_ids().len()), Some(d.core_ids()[0]));
    }

    #[test]
    fn cores_wrap_around() {
        let d = Device::cores(vec![4, 7]);
        assert_eq!(d.core_for(0), Some(4));
        assert_eq!(d.core_for(3), Some(7));
        assert_eq!(Device::cores(vec![]).core_for(0), None);
    }
}
