#!/usr/bin/env bash
# Install a Debian package the tests need (apt-get update only when the plain install fails), or warn.
# Usage: bash scripts/install_debian_package.sh PACKAGE "WHAT IS LOST WITHOUT IT"
set -uo pipefail
package=$1 lost=$2
if [ "$(id -u)" != 0 ]; then
    echo "warning: $package missing and not root; $lost" >&2
    exit 0
fi
(apt-get install -y -q "$package" >/dev/null 2>&1 ||
 { apt-get update -q >/dev/null && apt-get install -y -q "$package" >/dev/null; }) ||
    echo "warning: could not install $package; $lost" >&2
