# Sourced by scripts/test.sh and scripts/demo.sh: idempotent set-up helpers.

# Install Debian packages that are missing (only as root; otherwise say what is needed).
setup_system_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root or install them)" >&2
        return 1
    fi
    echo "installing ${missing[*]} ..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Create .venv and install sidetrace (editable) with the given extras, every
# version pinned by requirements.lock (scripts/lock.sh makes it; see
# docs/dependencies.md). A dependency added to pyproject.toml and not locked yet
# still installs, within its range, until the lock is made again.
setup_venv() {
    local extras="${1:-}"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    local stamp=".venv/.installed-${extras:-base}"
    # Reinstall when the packaging, the lock or the C sources changed (they are compiled then).
    if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml setup.py requirements.lock sidecar tracestore \
            -maxdepth 1 -newer "$stamp" \( -name '*.toml' -o -name setup.py -o -name '*.lock' \
            -o -name '*.c' -o -name '*.h' \) -print -quit)" ]; then
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
        local lock=()
        [ -f requirements.lock ] && lock=(--constraint requirements.lock)
        .venv/bin/python -m pip install -q "${lock[@]}" -e ".${extras:+[$extras]}"
        touch "$stamp"
    fi
}
