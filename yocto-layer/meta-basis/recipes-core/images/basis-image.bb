SUMMARY = "Basis node image: a minimal system that boots into the Basis node"
DESCRIPTION = "What core-image-minimal holds (a console-only system that boots) plus \
               packagegroup-basis: the node starts at boot under systemd, with the tuned \
               configuration of the board linked into /etc/basis/conf.d. Build it with \
               INIT_MANAGER = \"systemd\" and, for a Raspberry Pi, a MACHINE from \
               meta-raspberrypi (README.md)."
HOMEPAGE = "https://github.com/basis-firmware/basis"
BUGTRACKER = "https://github.com/basis-firmware/basis/issues"
SECTION = "images"
LICENSE = "MIT"
# An image is checked through the recipes it installs; it is no product of its own.
CVE_PRODUCT = ""

# The content of core-image-minimal, spelled out rather than required from meta, so that
# this recipe stands alone; the Basis packages come from packagegroup-basis. No avahi: the
# node does its own mDNS.
IMAGE_INSTALL = "packagegroup-core-boot packagegroup-basis ${CORE_IMAGE_EXTRA_INSTALL}"
IMAGE_LINGUAS = ""

inherit core-image

# The board configuration linked as /etc/basis/conf.d/10-board.toml: the name of a file in
# /usr/share/basis/boards/available.d without .toml (board-configs/README.md lists them).
# Chosen from MACHINE when it names one board; set BASIS_BOARD in local.conf otherwise, or
# to change it. Empty: no link, the node runs on its built-in defaults.
BASIS_BOARD ?= "${BASIS_BOARD_FOR_MACHINE}"
BASIS_BOARD_FOR_MACHINE = ""
BASIS_BOARD_FOR_MACHINE:raspberrypi0-2w = "pi-zero-2w"
BASIS_BOARD_FOR_MACHINE:raspberrypi0-2w-64 = "pi-zero-2w"
BASIS_BOARD_FOR_MACHINE:raspberrypi3 = "pi3"
BASIS_BOARD_FOR_MACHINE:raspberrypi3-64 = "pi3"
BASIS_BOARD_FOR_MACHINE:raspberrypi4 = "pi4"
BASIS_BOARD_FOR_MACHINE:raspberrypi4-64 = "pi4"
BASIS_BOARD_FOR_MACHINE:raspberrypi5 = "pi5"
BASIS_BOARD_FOR_MACHINE:raspberrypi5-64 = "pi5"
BASIS_BOARD_FOR_MACHINE:genericarm64 = "server-arm64"
BASIS_BOARD_FOR_MACHINE:genericx86-64 = "server-x86_64"

ROOTFS_POSTPROCESS_COMMAND += "basis_link_board_config"

basis_link_board_config[doc] = "Links the board configuration named by BASIS_BOARD into /etc/basis/conf.d"
basis_link_board_config() {
    if [ -z "${BASIS_BOARD}" ]; then
        bbnote "BASIS_BOARD is empty: no board configuration linked"
        return
    fi
    board=${datadir}/basis/boards/available.d/${BASIS_BOARD}.toml
    if [ ! -f "${IMAGE_ROOTFS}$board" ]; then
        bbfatal "BASIS_BOARD = \"${BASIS_BOARD}\": the image has no $board"
    fi
    ln -sf "$board" ${IMAGE_ROOTFS}${sysconfdir}/basis/conf.d/10-board.toml
}
