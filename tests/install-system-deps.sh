#!/usr/bin/env bash
# Installs the system packages the test suite talks to, where they are missing and we can
# (root with apt-get). Elsewhere the tests that need them skip and say why; under CI=true a
# missing peer fails those tests instead. The list grows with the channels under test.
set -euo pipefail
needed=()
command -v systemd-analyze >/dev/null 2>&1 || needed+=(systemd)
# Dovecot lives in /usr/sbin, which a non-login PATH may lack.
PATH="$PATH:/usr/sbin:/sbin" command -v dovecot >/dev/null || needed+=(dovecot-imapd)
# The console's browser tests drive Debian's Chromium at this path (never a downloaded one).
[ -x /usr/bin/chromium ] || needed+=(chromium)
if [ ${#needed[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: cannot install ${needed[*]} (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "installing ${needed[*]} for the tests"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}"
