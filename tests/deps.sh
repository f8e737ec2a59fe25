#!/usr/bin/env bash
# Installs the Debian packages that building migd, the lab and the tests need,
# but only those that are missing. Sourced by demo.sh and run.sh; needs root.
MIGD_DEPS="build-essential cmake pkg-config libuv1-dev libssh2-1-dev
  libcurl4-openssl-dev libjansson-dev libsqlite3-dev libh2o-dev libssl-dev
  libcmocka-dev zfs-fuse openssh-server openssh-client python3 python3-pytest
  util-linux procps fuse3 sqlite3 curl valgrind prometheus tzdata"
# The control API's fuzzer (run.sh, MIGD_FUZZ): clang and its libFuzzer,
# ASan and UBSan runtimes.
MIGD_FUZZ_DEPS="clang libclang-rt-14-dev"

# migd_install_deps [EXTRA_PACKAGE...]: MIGD_DEPS and the extra packages.
migd_install_deps() {
    local missing=()
    for p in $MIGD_DEPS "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # zfs-fuse's and openssh-server's maintainer scripts try to start services;
    # without an init system that fails harmlessly, so keep them from trying.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
}
