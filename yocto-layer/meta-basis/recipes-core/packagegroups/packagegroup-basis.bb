SUMMARY = "Basis node: the packages a board needs to run one"
DESCRIPTION = "Everything that makes a board a Basis node, for any image: today the basis \
               package (daemon, unit, user, board configurations). Add this to an image \
               rather than basis itself, so that parts added later come along."
HOMEPAGE = "https://github.com/basis-firmware/basis"
BUGTRACKER = "https://github.com/basis-firmware/basis/issues"
SECTION = "net"
LICENSE = "MIT"

inherit packagegroup

# No avahi: the node announces and browses mDNS (_basis._udp) itself.
RDEPENDS:${PN} = "basis"
