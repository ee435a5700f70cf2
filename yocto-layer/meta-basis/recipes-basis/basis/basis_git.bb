SUMMARY = "Basis node: end-to-end encrypted group messaging for LANs without Internet"
DESCRIPTION = "The Basis node daemon with its command-line client and admin tools, one \
               binary (basis) run by systemd as its own unprivileged user. Nodes on a LAN \
               find each other over mDNS and replicate room events over QUIC; no Internet \
               link is needed. The package also carries the unit, its sysusers.d and \
               tmpfiles.d files and the tuned configuration of each supported board."
HOMEPAGE = "https://github.com/basis-firmware/basis"
BUGTRACKER = "https://github.com/basis-firmware/basis/issues"
SECTION = "net"
# The project has not chosen a license yet; change this (and add LIC_FILES_CHKSUM) when it
# does.
LICENSE = "CLOSED"
# Basis has no entry in the CVE database; vendor-qualified so that no other product called
# "basis" matches it.
CVE_PRODUCT = "basis-firmware:basis"

# Where to fetch the Basis repository and which commit to build: set both in local.conf
# (README.md). A fixed commit keeps builds reproducible and must match the crate list below
# (that commit's Cargo.lock). Until BASIS_SRCREV is set the recipe is skipped, with a message.
BASIS_GIT_URI ?= "git://github.com/basis-firmware/basis.git;protocol=https;branch=main"
BASIS_SRCREV ?= ""

# Where the first-boot file is on the board. The unit in the repository names
# /boot/firmware/basis.toml, where Raspberry Pi OS mounts the SD card's FAT boot partition;
# meta-raspberrypi mounts that partition on /boot.
BASIS_FIRST_BOOT_FILE ?= "/boot/basis.toml"

# The oldest Rust the workspace builds with (rust-version in Cargo.toml), checked against
# RUSTVERSION when the recipe is parsed. Empty: no check.
BASIS_RUST_MIN ?= "1.95"

PV = "0.1.0+git"
SRC_URI = "${BASIS_GIT_URI};destsuffix=${BP}"
SRCREV = "${BASIS_SRCREV}"

require basis-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd

# Build the workspace's binary crate; Cargo.lock is at the top of the repository.
CARGO_SRC_DIR = "firmware/basis"

# The release profile strips the binary; leave that to the build system, which splits the
# debug symbols into basis-dbg (and would otherwise stop at its already-stripped check).
export CARGO_PROFILE_RELEASE_STRIP = "none"

USERADD_PACKAGES = "${PN}"
# The user of systemd/sysusers.d/basis.conf, made when the image is built so that
# /etc/basis/conf.d can belong to its group and the image's check of sysusers.d files finds
# it as declared there (home directory and shell). That file is installed too; at boot it
# changes nothing.
USERADD_PARAM:${PN} = "--system --user-group --home-dir ${localstatedir}/lib/basis --no-create-home --shell ${sbindir}/nologin basis"

SYSTEMD_SERVICE:${PN} = "basis.service"

FILES:${PN} += "${nonarch_libdir}/sysusers.d/basis.conf ${nonarch_libdir}/tmpfiles.d/basis.conf"

# The native variant is the bare binary, for checking configuration files at build time
# (`basis config check FILE` in a task of your own).
BBCLASSEXTEND = "native"

do_install:append:class-target() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/basis.service ${D}${systemd_system_unitdir}/basis.service
    sed -i -e 's#BASIS_FIRST_BOOT_FILE=/boot/firmware/basis.toml #BASIS_FIRST_BOOT_FILE=${BASIS_FIRST_BOOT_FILE} #' \
        ${D}${systemd_system_unitdir}/basis.service
    if ! grep -q -F 'BASIS_FIRST_BOOT_FILE=${BASIS_FIRST_BOOT_FILE} ' ${D}${systemd_system_unitdir}/basis.service; then
        bbfatal "basis.service no longer names /boot/firmware/basis.toml where the recipe expects it; update do_install"
    fi

    install -d ${D}${nonarch_libdir}/sysusers.d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/sysusers.d/basis.conf ${D}${nonarch_libdir}/sysusers.d/basis.conf
    install -m 0644 ${S}/systemd/tmpfiles.d/basis.conf ${D}${nonarch_libdir}/tmpfiles.d/basis.conf

    install -d ${D}${datadir}/basis/boards/available.d
    install -m 0644 ${S}/board-configs/available.d/*.toml ${D}${datadir}/basis/boards/available.d/

    # What tmpfiles.d/basis.conf makes at boot, here already, for a read-only root too.
    install -d -m 0755 ${D}${sysconfdir}/basis
    install -d -m 0750 -o root -g basis ${D}${sysconfdir}/basis/conf.d
}

# Why the recipe cannot be built as configured, or "" when it can: read through SKIP_RECIPE,
# so that a build without these settings parses and only says so when it needs Basis.
def basis_skip_reason(d):
    import re

    if not d.getVar("BASIS_SRCREV"):
        return "BASIS_SRCREV is not set: set it to the commit of the Basis repository to build (meta-basis/README.md)"

    def major_minor(version):
        numbers = re.findall(r"\d+", version or "")
        return tuple(int(n) for n in numbers[:2]) if len(numbers) >= 2 else None

    wanted = major_minor(d.getVar("BASIS_RUST_MIN"))
    have = major_minor(d.getVar("RUSTVERSION"))
    if wanted and have and have < wanted:
        return "Basis needs Rust %s or newer but RUSTVERSION is %s: add a layer that provides a newer Rust (meta-basis/README.md, \"Rust\")" % (d.getVar("BASIS_RUST_MIN"), d.getVar("RUSTVERSION"))
    return ""

SKIP_RECIPE[basis] = "${@basis_skip_reason(d)}"
SKIP_RECIPE[basis-native] = "${@basis_skip_reason(d)}"
