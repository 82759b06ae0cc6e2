//! What the node is (facts) and what it is doing now (usage), read straight from `/proc`,
//! `/sys` and `/etc/os-release`.
//!
//! Usage is gathered on every heartbeat, so nothing here spawns a process or reads more than a
//! few small kernel files; each missing or unreadable file leaves its field at its default
//! rather than failing the heartbeat. The parsing is kept apart from the reading so it can be
//! tested on captured text.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use steward_wire::nodes::{Disk, Facts, Usage};

/// The most read of one small kernel or `/etc` file: each is well under a page, and the cap
/// keeps an unexpected file from costing more.
const MAX_SMALL_FILE_BYTES: u64 = 64 * 1024;

/// Filesystem types that hold no disk space of the node's own: kernel views, memory-backed
/// trees, container layers (their space is the disk under them, counted once there) and
/// read-only images that are always full (snaps).
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "aufs",
    "pipefs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sockfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "nfsd",
];

/// Network filesystems: `statvfs` on one whose server is unreachable can block for minutes,
/// which the heartbeat must not, so they are only measured when named explicitly.
const NETWORK_FILESYSTEMS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "9p",
    "afs",
    "davfs",
];

/// The node's facts, reported as `agent_version` runs.
pub fn gather_facts(agent_version: &str) -> Facts {
    let memory = read_small("/proc/meminfo")
        .map(|text| parse_meminfo(&text))
        .unwrap_or_default();
    Facts {
        hostname: read_trimmed("/proc/sys/kernel/hostname"),
        os: os_name(),
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        cpus: cpu_count(),
        memory_bytes: memory.total_bytes,
        agent_version: agent_version.to_owned(),
    }
}

/// The node's usage now. Disk use is measured for each of `mounts` (any path works; a path
/// that cannot be measured is left out), or, when `mounts` is empty, for every real
/// filesystem in `/proc/mounts` (one mount point per device, skipping pseudo and network
/// filesystems). Disks are sorted by mount point.
pub fn gather_usage(mounts: &[String]) -> Usage {
    let memory = read_small("/proc/meminfo")
        .map(|text| parse_meminfo(&text))
        .unwrap_or_default();
    Usage {
        load: read_small("/proc/loadavg")
            .map(|text| parse_loadavg(&text))
            .unwrap_or_default(),
        memory_available_bytes: memory.available_bytes,
        uptime_s: read_small("/proc/uptime")
            .and_then(|text| parse_uptime(&text))
            .unwrap_or_default(),
        disks: disks(mounts),
    }
}

fn disks(mounts: &[String]) -> Vec<Disk> {
    let listed;
    let mounts = if mounts.is_empty() {
        listed = mounted_filesystems();
        &listed
    } else {
        mounts
    };
    let mut disks: Vec<Disk> = mounts.iter().filter_map(|mount| disk_of(mount)).collect();
    disks.sort();
    disks.dedup_by(|a, b| a.mount == b.mount);
    disks
}

// `c_ulong` and `fsblkcnt_t` are `u64` here but narrower on 32-bit targets.
#[allow(clippy::useless_conversion)]
fn disk_of(mount: &str) -> Option<Disk> {
    let stat = match nix::sys::statvfs::statvfs(mount) {
        Ok(stat) => stat,
        Err(error) => {
            tracing::debug!(mount, %error, "cannot measure disk use");
            return None;
        }
    };
    // `df` counts in fragments (f_frsize), the unit f_blocks and f_bfree are in.
    let unit = u64::from(stat.fragment_size());
    let blocks = u64::from(stat.blocks());
    let free = u64::from(stat.blocks_free());
    Some(Disk {
        mount: mount.to_owned(),
        total_bytes: blocks.saturating_mul(unit),
        used_bytes: blocks.saturating_sub(free).saturating_mul(unit),
    })
}

fn mounted_filesystems() -> Vec<String> {
    // Streamed line by line: on a container host /proc/mounts holds a long overlay line per
    // container, and none of them is kept.
    match File::open("/proc/mounts") {
        Ok(file) => real_mounts(BufReader::new(file).lines().map_while(Result::ok)),
        Err(error) => {
            tracing::debug!(%error, "cannot read /proc/mounts");
            Vec::new()
        }
    }
}

/// The mount points of real filesystems among `/proc/mounts` lines, one per device (the
/// shortest, so a disk bind-mounted elsewhere is reported where it is mounted whole), sorted.
fn real_mounts<L: AsRef<str>>(lines: impl IntoIterator<Item = L>) -> Vec<String> {
    let mut by_device: BTreeMap<String, String> = BTreeMap::new();
    for line in lines {
        let mut fields = line.as_ref().split_whitespace();
        let (Some(device), Some(mount), Some(kind)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !is_real_filesystem(kind) {
            continue;
        }
        let mount = unescape_mount(mount);
        match by_device.get_mut(device) {
            Some(kept) if kept.len() <= mount.len() => {}
            Some(kept) => *kept = mount,
            None => {
                by_device.insert(device.to_owned(), mount);
            }
        }
    }
    let mut mounts: Vec<String> = by_device.into_values().collect();
    mounts.sort();
    mounts
}

fn is_real_filesystem(kind: &str) -> bool {
    // FUSE mounts are mostly views (lxcfs, gvfs) or remote (sshfs); `fuseblk` is a local disk
    // (NTFS through ntfs-3g).
    if kind == "fuse" || kind.starts_with("fuse.") {
        return false;
    }
    !PSEUDO_FILESYSTEMS.contains(&kind) && !NETWORK_FILESYSTEMS.contains(&kind)
}

/// Decodes the `\ooo` octal escapes the kernel writes for spaces, tabs, newlines and
/// backslashes in mount points.
fn unescape_mount(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'\\'
            && let Some(code) = tail.get(..3).and_then(octal_byte)
        {
            out.push(code);
            rest = tail.get(3..).unwrap_or_default();
        } else {
            out.push(first);
            rest = tail;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    digits.iter().try_fold(0u8, |value, &digit| {
        if !(b'0'..=b'7').contains(&digit) {
            return None;
        }
        value.checked_mul(8)?.checked_add(digit - b'0')
    })
}

/// `/proc/meminfo`'s figures that matter here, in bytes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Memory {
    total_bytes: u64,
    available_bytes: u64,
}

fn parse_meminfo(text: &str) -> Memory {
    let (mut total, mut available, mut free, mut buffers, mut cached) = (None, None, 0, 0, 0);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut words = value.split_whitespace();
        let Some(amount) = words.next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        // The kernel writes every size in kB (KiB); a line without a unit is a count.
        let bytes = match words.next() {
            Some("kB") => amount.saturating_mul(1024),
            _ => amount,
        };
        match key {
            "MemTotal" => total = Some(bytes),
            "MemAvailable" => available = Some(bytes),
            "MemFree" => free = bytes,
            "Buffers" => buffers = bytes,
            "Cached" => cached = bytes,
            _ => {}
        }
    }
    Memory {
        total_bytes: total.unwrap_or_default(),
        // Kernels before 3.14 have no MemAvailable; free plus caches is what they would have
        // reported, give or take what caches cannot give back.
        available_bytes: available
            .unwrap_or_else(|| free.saturating_add(buffers).saturating_add(cached)),
    }
}

/// The 1, 5 and 15 minute load averages of `/proc/loadavg`; zeros if they cannot be read.
fn parse_loadavg(text: &str) -> [f64; 3] {
    let mut load = [0.0; 3];
    let mut fields = text.split_whitespace();
    for slot in &mut load {
        // A non-finite figure would not survive JSON, so it is as good as unreadable.
        match fields.next().and_then(|f| f.parse::<f64>().ok()) {
            Some(value) if value.is_finite() && value >= 0.0 => *slot = value,
            _ => return [0.0; 3],
        }
    }
    load
}

/// Whole seconds since boot, the first figure of `/proc/uptime`.
fn parse_uptime(text: &str) -> Option<u64> {
    let seconds = text.split_whitespace().next()?;
    let whole = seconds.split_once('.').map_or(seconds, |(whole, _)| whole);
    whole.parse().ok()
}

/// The number of CPUs in a kernel CPU list (`0-3,6,8-9`), `None` if it is not one.
fn parse_cpu_list(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.split(',').try_fold(0u32, |count, part| {
        let span = match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (first.parse::<u32>().ok()?, last.parse::<u32>().ok()?);
                last.checked_sub(first)?.checked_add(1)?
            }
            None => {
                part.parse::<u32>().ok()?;
                1
            }
        };
        count.checked_add(span)
    })
}

/// The operating system's name per os-release(5): `PRETTY_NAME`, else `NAME` and `VERSION`,
/// else `Linux`, the default the format defines.
fn parse_os_release(text: &str) -> String {
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            fields.insert(key.trim(), unquote_shell(value.trim()));
        }
    }
    let field = |key: &str| fields.get(key).filter(|v| !v.is_empty());
    if let Some(pretty) = field("PRETTY_NAME") {
        return pretty.clone();
    }
    match (
        field("NAME"),
        field("VERSION").or_else(|| field("VERSION_ID")),
    ) {
        (Some(name), Some(version)) => format!("{name} {version}"),
        (Some(name), None) => name.clone(),
        _ => "Linux".to_owned(),
    }
}

/// An os-release value: shell-style, double quotes taking `\` escapes, single quotes none.
fn unquote_shell(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    let mut quote = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (Some('\''), _) => out.push(c),
            // Inside double quotes a backslash escapes only what the shell lets it escape.
            (Some(_), '\\') => match chars.next() {
                Some(next @ ('"' | '\\' | '$' | '`')) => out.push(next),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            (None, '\\') => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

fn os_name() -> String {
    // /etc/os-release may be absent in favour of the vendor copy, as os-release(5) allows.
    ["/etc/os-release", "/usr/lib/os-release"]
        .into_iter()
        .find_map(read_small)
        .map(|text| parse_os_release(&text))
        .unwrap_or_default()
}

fn cpu_count() -> u32 {
    // The kernel's list of online CPUs counts the node's CPUs; available_parallelism counts
    // those this process may use, which a cgroup quota or an affinity mask narrows.
    read_small("/sys/devices/system/cpu/online")
        .and_then(|text| parse_cpu_list(&text))
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .and_then(|n| u32::try_from(n.get()).ok())
        })
        .unwrap_or_default()
}

fn read_trimmed(path: &str) -> String {
    read_small(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

/// The text of a small file, at most [`MAX_SMALL_FILE_BYTES`] of it; `None` if it cannot be
/// read. `/proc` files report a size of 0, so the cap, not the size, bounds the read.
fn read_small(path: impl AsRef<Path>) -> Option<String> {
    let path = path.as_ref();
    let mut bytes = Vec::new();
    let read =
        File::open(path).and_then(|file| file.take(MAX_SMALL_FILE_BYTES).read_to_end(&mut bytes));
    if let Err(error) = read {
        tracing::debug!(path = %path.display(), %error, "cannot read");
        return None;
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_prefers_the_pretty_name_and_unquotes_it() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                      VERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(parse_os_release(debian), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(
            parse_os_release("# comment\nPRETTY_NAME='Single \"quoted\" \\n'\n"),
            "Single \"quoted\" \\n"
        );
        assert_eq!(
            parse_os_release("PRETTY_NAME=\"Say \\\"hi\\\" \\$HOME\"\n"),
            "Say \"hi\" $HOME"
        );
        assert_eq!(parse_os_release("PRETTY_NAME=Bare\n"), "Bare");
    }

    #[test]
    fn os_release_falls_back_to_name_and_version_then_to_linux() {
        assert_eq!(
            parse_os_release("NAME=\"Alpine Linux\"\nVERSION_ID=3.20.1\n"),
            "Alpine Linux 3.20.1"
        );
        assert_eq!(
            parse_os_release("PRETTY_NAME=\"\"\nNAME=Arch\nVERSION=\"rolling\"\n"),
            "Arch rolling"
        );
        assert_eq!(parse_os_release("NAME=Gentoo\n"), "Gentoo");
        assert_eq!(parse_os_release(""), "Linux");
        assert_eq!(parse_os_release("garbage without equals\n"), "Linux");
    }

    #[test]
    fn meminfo_gives_total_and_available_in_bytes() {
        let text = "MemTotal:       24683772 kB\nMemFree:        21076128 kB\n\
                    MemAvailable:   23479096 kB\nBuffers:          123456 kB\n\
                    HugePages_Total:       0\n";
        assert_eq!(
            parse_meminfo(text),
            Memory {
                total_bytes: 24_683_772 * 1024,
                available_bytes: 23_479_096 * 1024,
            }
        );
    }

    #[test]
    fn meminfo_without_mem_available_adds_free_and_caches() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 300 kB\n\
                    SwapCached: 999 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Memory {
                total_bytes: 1000 * 1024,
                available_bytes: 420 * 1024,
            }
        );
        assert_eq!(parse_meminfo(""), Memory::default());
        assert_eq!(parse_meminfo("MemTotal: lots kB\n").total_bytes, 0);
    }

    #[test]
    fn loadavg_takes_the_three_averages_or_nothing() {
        assert_eq!(
            parse_loadavg("0.74 0.71 0.35 3/208 13459\n"),
            [0.74, 0.71, 0.35]
        );
        assert_eq!(parse_loadavg("0.74 0.71"), [0.0; 3]);
        assert_eq!(parse_loadavg("0.74 NaN 1"), [0.0; 3]);
        assert_eq!(parse_loadavg("inf 1 1"), [0.0; 3]);
        assert_eq!(parse_loadavg(""), [0.0; 3]);
    }

    #[test]
    fn uptime_is_whole_seconds() {
        assert_eq!(parse_uptime("506.17 654.14\n"), Some(506));
        assert_eq!(parse_uptime("42 1"), Some(42));
        assert_eq!(parse_uptime("-1.0 1"), None);
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a-b"), None);
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("0-4294967295"), None);
    }

    #[test]
    fn real_mounts_skip_pseudo_and_network_filesystems_and_repeat_devices() {
        let text = "\
proc /proc proc rw,relatime 0 0
sysfs /sys sysfs rw,relatime 0 0
devtmpfs /dev devtmpfs rw,relatime 0 0
tmpfs /run tmpfs rw 0 0
/dev/vda1 /var/lib/docker/volumes ext4 rw 0 0
/dev/vda1 / ext4 rw,relatime 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw,lowerdir=/x 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
/dev/loop3 /snap/core/1 squashfs ro 0 0
/dev/sdb1 /mnt/my\\040disk xfs rw 0 0
server:/export /mnt/nfs nfs4 rw 0 0
lxcfs /var/lib/lxcfs fuse.lxcfs rw 0 0
/dev/sdc1 /mnt/windows fuseblk rw 0 0
rpool/home /home zfs rw 0 0
short line
";
        assert_eq!(
            real_mounts(text.lines()),
            ["/", "/home", "/mnt/my disk", "/mnt/windows"]
        );
        assert!(real_mounts(std::iter::empty::<&str>()).is_empty());
    }

    #[test]
    fn mount_escapes_decode_and_malformed_ones_stay_as_written() {
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        assert_eq!(unescape_mount("/odd\\09x\\4"), "/odd\\09x\\4");
        assert_eq!(unescape_mount("/high\\777"), "/high\\777");
    }

    #[test]
    fn facts_of_this_machine_are_filled_in() {
        let facts = gather_facts("1.2.3");
        assert_eq!(facts.agent_version, "1.2.3");
        assert!(facts.cpus >= 1, "{facts:?}");
        assert!(facts.memory_bytes > 0, "{facts:?}");
        assert!(!facts.kernel.is_empty(), "{facts:?}");
        assert!(!facts.hostname.is_empty(), "{facts:?}");
    }

    #[test]
    fn usage_measures_named_mounts_once_and_leaves_out_what_it_cannot() {
        let named = [
            "/".to_owned(),
            "/nonexistent/steward".to_owned(),
            "/".to_owned(),
        ];
        let usage = gather_usage(&named);
        assert_eq!(usage.disks.len(), 1, "{usage:?}");
        let root = &usage.disks[0];
        assert_eq!(root.mount, "/");
        assert!(
            root.total_bytes > 0 && root.used_bytes <= root.total_bytes,
            "{root:?}"
        );
        assert!(usage.uptime_s > 0, "{usage:?}");
        assert!(usage.memory_available_bytes > 0, "{usage:?}");

        let discovered = gather_usage(&[]);
        for disk in &discovered.disks {
            assert!(disk.used_bytes <= disk.total_bytes, "{disk:?}");
        }
        assert!(discovered.disks.windows(2).all(|w| w[0].mount < w[1].mount));
    }
}
