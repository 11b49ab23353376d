#!/usr/bin/env bash
# pcscd with the project's virtual (vpcd) readers, without systemd.
#
#   scripts/pcsc-env.sh install              install the Debian packages that are missing
#   scripts/pcsc-env.sh start [--readers N] [--serial M]
#                                            start pcscd with N vpcd entries (default 4) and
#                                            M simulated serial readers (default 0, see below)
#   scripts/pcsc-env.sh stop                 stop it
#   scripts/pcsc-env.sh restart [--readers N] [--serial M]
#   scripts/pcsc-env.sh status               exit 0 if running, 3 if not
#   scripts/pcsc-env.sh env [--readers N]    print the export lines for the tests
#
# Each reader.conf entry "SSCard Virtual X" gives two reader slots, "... 00 00" and
# "... 00 01", on consecutive TCP ports that pcscd listens on; a virtual card (vicc) connects
# to a slot's port as a client. Entry i (0-based) has base port 35963 + 2*i, so the slots of the
# default four entries are 35963..35970 in order.
#
# State lives in ${SSCARD_PCSC_DIR:-/tmp/sscard-pcsc}: reader.conf, the driver copies,
# pcscd.pid, pcscd.log and env (the export lines, for tests to read). The directory is never
# deleted: the tests keep their flock files in it.
#
# Serial readers (issue 8), optional: with --serial M (or SSCARD_SERIAL=M) the script also
# makes M pty pairs with socat, runs firmware-tests' simulated GemPC Twin reader
# (`serial-reader`, built with cargo unless SSCARD_SERIAL_READER_BIN names it) on one end of
# each, and lists the other end in reader.conf with pcscd's own serial CCID driver,
# libccidtwin: "SSCard Serial A" ... The reader must answer before pcscd starts (libccidtwin
# gives up after 2 s), so the chain is started first and stopped with pcscd. M is remembered
# in $STATE_DIR/serial/count, so a later plain `start` or `restart` keeps the serial readers;
# `--serial 0` removes them. Without --serial nothing changes from before. Each reader's
# control socket is $STATE_DIR/serial/<letter>.sock; the env file gains SSCARD_SERIAL_READERS,
# SSCARD_SERIAL_CONTROLS and SSCARD_SERIAL_READER_BIN.
#
# Why each entry loads its own copy of libifdvpcd.so: pcscd loads a driver library once per
# LIBPATH, and vpcd keeps its per-slot state in a static array indexed by the slot number
# (0 or 1) only. With two entries on the same LIBPATH the second entry overwrites the first
# one's state and no card is ever detected in any slot (measured here with pcscd 1.9.9 and
# vsmartcard-vpcd 3.3). A private copy per entry gives each its own state.
set -euo pipefail

readonly PACKAGES=(pcscd libpcsclite-dev pkg-config vsmartcard-vpcd opensc pcsc-tools socat libccid)
readonly MAX_SERIAL=4
readonly CCIDTWIN_CANDIDATES=(/usr/lib/pcsc/drivers/serial/libccidtwin.so /usr/lib/*/pcsc/drivers/serial/libccidtwin.so /usr/local/lib/pcsc/drivers/serial/libccidtwin.so)
readonly BASE_PORT=35963
readonly DEFAULT_ENTRIES=4
readonly MAX_ENTRIES=8 # pcscd handles at most 16 reader slots
readonly LETTERS=(A B C D E F G H)
readonly RUN_DIR=/run/pcscd
readonly START_TIMEOUT_S=10
readonly STOP_TIMEOUT_S=5

STATE_DIR="${SSCARD_PCSC_DIR:-/tmp/sscard-pcsc}"
CONF="$STATE_DIR/reader.conf"
PID_FILE="$STATE_DIR/pcscd.pid"
LOG_FILE="$STATE_DIR/pcscd.log"
ENV_FILE="$STATE_DIR/env"
DRIVER_DIR="$STATE_DIR/drivers"
LOCK_FILE="$STATE_DIR/.pcsc-env.lock"
SERIAL_DIR="$STATE_DIR/serial"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
    echo "pcsc-env: $*" >&2
    exit 1
}

info() {
    echo "pcsc-env: $*" >&2
}

usage() {
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

# ---------------------------------------------------------------------------------------------
# install

cmd_install() {
    local missing=() pkg state
    for pkg in "${PACKAGES[@]}"; do
        state="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        if [ "$state" != installed ]; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "pcsc-env: all packages installed"
        return 0
    fi
    info "installing: ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------
# processes

# True if PID is a live process (a zombie counts as dead: PID 1 here reaps orphans late, so
# `kill -0` keeps succeeding on a process that has already exited).
alive() {
    local pid="$1" state
    [ -n "$pid" ] || return 1
    state="$(awk '/^State:/ {print $2; exit}' "/proc/$pid/status" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

is_pcscd() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = pcscd ]
}

# PIDs of every live pcscd on the machine (ours or not).
all_pcscd_pids() {
    local pids=() pid
    if [ -r "$RUN_DIR/pcscd.pid" ]; then
        pid="$(tr -dc '0-9' <"$RUN_DIR/pcscd.pid")"
        if [ -n "$pid" ] && is_pcscd "$pid" && alive "$pid"; then
            pids+=("$pid")
        fi
    fi
    # Scan /proc rather than rely on pgrep (procps is not in a minimal Debian).
    local d
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        if is_pcscd "$pid" && alive "$pid" && [[ " ${pids[*]} " != *" $pid "* ]]; then
            pids+=("$pid")
        fi
    done
    echo "${pids[*]}"
}

# PID of our pcscd if it is alive, else nothing.
our_pid() {
    local pid
    [ -r "$PID_FILE" ] || return 0
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    if [ -n "$pid" ] && is_pcscd "$pid" && alive "$pid" &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-c $CONF "; then
        echo "$pid"
    fi
}

# A live pcscd started with our reader.conf, whoever started it.
find_our_pcscd() {
    local pid
    for pid in $(all_pcscd_pids); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-c $CONF "; then
            echo "$pid"
            return 0
        fi
    done
}

# Milliseconds since the epoch (bash 5's EPOCHREALTIME, no fork).
now_ms() {
    local t="${EPOCHREALTIME/[.,]/}"
    echo "${t:0:-3}"
}

wait_dead() {
    local pid="$1" deadline
    deadline=$(($(now_ms) + $2 * 1000))
    while alive "$pid"; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

kill_pid() {
    local pid="$1"
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_dead "$pid" "$STOP_TIMEOUT_S"; then
        info "pcscd $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_dead "$pid" "$STOP_TIMEOUT_S" || die "pcscd $pid does not die"
    fi
}

# On a systemd machine pcscd is socket-activated and would come back behind our back.
stop_systemd_pcscd() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        as_root systemctl stop pcscd.socket pcscd.service >/dev/null 2>&1 || true
    fi
}

# Stop every pcscd (ours and foreign ones) and clear the leftovers in /run/pcscd.
stop_all() {
    local pid ours
    stop_systemd_pcscd
    ours="$(our_pid)"
    for pid in $(all_pcscd_pids); do
        if [ "$pid" != "$ours" ]; then
            info "stopping a pcscd this script did not start (pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null))"
        fi
        kill_pid "$pid"
    done
    stop_serial
    rm -f "$PID_FILE"
    # pcscd removes these on a clean exit, not after SIGKILL; a stale pcscd.comm makes the
    # next pcscd refuse to start.
    rm -rf "$RUN_DIR"
}

# ---------------------------------------------------------------------------------------------
# configuration

ENTRIES="$DEFAULT_ENTRIES"
ENTRIES_GIVEN=0
SERIAL=""

parse_readers_opt() {
    while [ "$#" -gt 0 ]; do
        case "$1" in
        --serial)
            [ "$#" -ge 2 ] || die "--serial needs a number"
            SERIAL="$2"
            ENTRIES_GIVEN=1
            shift 2
            continue
            ;;
        --serial=*)
            SERIAL="${1#--serial=}"
            ENTRIES_GIVEN=1
            shift
            continue
            ;;
        --readers)
            [ "$#" -ge 2 ] || die "--readers needs a number"
            ENTRIES="$2"
            shift 2
            ;;
        --readers=*)
            ENTRIES="${1#--readers=}"
            shift
            ;;
        *) die "unknown argument: $1" ;;
        esac
        ENTRIES_GIVEN=1
    done
    if ! [[ "$ENTRIES" =~ ^[0-9]+$ ]] || [ "$ENTRIES" -lt 1 ] || [ "$ENTRIES" -gt "$MAX_ENTRIES" ]; then
        die "--readers must be 1..$MAX_ENTRIES (each entry gives 2 slots), got '$ENTRIES'"
    fi
    # Serial readers: the flag, else SSCARD_SERIAL, else what the last start used, else 0.
    if [ -z "$SERIAL" ]; then
        SERIAL="${SSCARD_SERIAL:-}"
    fi
    if [ -z "$SERIAL" ] && [ -r "$SERIAL_DIR/count" ]; then
        SERIAL="$(tr -dc '0-9' <"$SERIAL_DIR/count")"
    fi
    SERIAL="${SERIAL:-0}"
    if ! [[ "$SERIAL" =~ ^[0-9]+$ ]] || [ "$SERIAL" -gt "$MAX_SERIAL" ]; then
        die "--serial must be 0..$MAX_SERIAL, got '$SERIAL'"
    fi
}

entry_name() { echo "SSCard Virtual ${LETTERS[$1]}"; }
entry_port() { echo $((BASE_PORT + 2 * $1)); }

slot_ports() {
    local i p out=()
    for ((i = 0; i < ENTRIES; i++)); do
        p="$(entry_port "$i")"
        out+=("$p" "$((p + 1))")
    done
    echo "${out[*]}"
}

slot_readers() {
    local i name names=()
    for ((i = 0; i < ENTRIES; i++)); do
        name="$(entry_name "$i")"
        names+=("$name 00 00" "$name 00 01")
    done
    local IFS='|'
    echo "${names[*]}"
}

find_driver() {
    local d="${SSCARD_VPCD_DRIVER:-}"
    if [ -n "$d" ]; then
        [ -r "$d" ] || die "SSCARD_VPCD_DRIVER=$d is not readable"
        echo "$d"
        return
    fi
    for d in /usr/lib/pcsc/drivers/serial/libifdvpcd.so \
        /usr/lib/*/pcsc/drivers/serial/libifdvpcd.so \
        /usr/local/lib/pcsc/drivers/serial/libifdvpcd.so; do
        if [ -r "$d" ]; then
            echo "$d"
            return
        fi
    done
    d="$(dpkg -L vsmartcard-vpcd 2>/dev/null | grep '/libifdvpcd\.so$' | head -n1 || true)"
    if [ -z "$d" ] || [ ! -r "$d" ]; then
        die "vpcd driver libifdvpcd.so not found; run: $0 install"
    fi
    echo "$d"
}

reader_conf_text() {
    local i port
    echo "# Written by scripts/pcsc-env.sh; each entry gives two vpcd slots (port, port+1)."
    for ((i = 0; i < ENTRIES; i++)); do
        port="$(entry_port "$i")"
        echo
        echo "FRIENDLYNAME \"$(entry_name "$i")\""
        printf 'DEVICENAME   /dev/null:0x%X\n' "$port"
        echo "LIBPATH      $DRIVER_DIR/libifdvpcd-${LETTERS[$i]}.so"
        printf 'CHANNELID    0x%X\n' "$port"
    done
    for ((i = 0; i < SERIAL; i++)); do
        echo
        echo "FRIENDLYNAME \"$(serial_name "$i")\""
        echo "DEVICENAME   $SERIAL_DIR/host-${LETTERS[$i]}"
        echo "LIBPATH      $(find_ccidtwin)"
    done
}

quote() {
    case "$1" in
    *"'"*) die "cannot quote a value containing a single quote: $1" ;;
    esac
    printf "'%s'" "$1"
}

env_text() {
    echo "export SSCARD_PCSC_DIR=$(quote "$STATE_DIR")"
    echo "export SSCARD_VPCD_PORTS=$(quote "$(slot_ports)")"
    echo "export SSCARD_VPCD_READERS=$(quote "$(slot_readers)")"
    if [ "$SERIAL" -gt 0 ]; then
        echo "export SSCARD_SERIAL_READERS=$(quote "$(serial_readers)")"
        echo "export SSCARD_SERIAL_CONTROLS=$(quote "$(serial_controls)")"
        echo "export SSCARD_SERIAL_READER_BIN=$(quote "$SERIAL_DIR/serial-reader")"
    fi
}

# ---------------------------------------------------------------------------------------------
# serial readers (simulated GemPC Twin on a socat pty pair, driven by libccidtwin)

serial_name() { echo "SSCard Serial ${LETTERS[$1]}"; }

# pcscd's names for the serial readers, '|'-separated. The entries share libccidtwin, so pcscd
# numbers them as readers of one driver: "SSCard Serial A 00 00", "SSCard Serial B 01 00", ...
serial_readers() {
    local i names=()
    for ((i = 0; i < SERIAL; i++)); do
        names+=("$(serial_name "$i") $(printf '%02X' "$i") 00")
    done
    local IFS='|'
    echo "${names[*]}"
}

serial_controls() {
    local i socks=()
    for ((i = 0; i < SERIAL; i++)); do
        socks+=("$SERIAL_DIR/${LETTERS[$i]}.sock")
    done
    local IFS='|'
    echo "${socks[*]}"
}

find_ccidtwin() {
    local d
    for d in "${CCIDTWIN_CANDIDATES[@]}"; do
        if [ -r "$d" ]; then
            echo "$d"
            return
        fi
    done
    die "libccidtwin.so not found (Debian package libccid); run: $0 install"
}

# The serial-reader binary to run: SSCARD_SERIAL_READER_BIN, or a fresh cargo build.
serial_reader_source() {
    if [ -n "${SSCARD_SERIAL_READER_BIN:-}" ]; then
        [ -x "$SSCARD_SERIAL_READER_BIN" ] || die "SSCARD_SERIAL_READER_BIN=$SSCARD_SERIAL_READER_BIN is not executable"
        echo "$SSCARD_SERIAL_READER_BIN"
        return
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: set SSCARD_SERIAL_READER_BIN to a built serial-reader"
    (cd "$REPO_DIR" && cargo build -q -p firmware-tests --bin serial-reader >&2) ||
        die "cargo build -p firmware-tests --bin serial-reader failed"
    echo "${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/serial-reader"
}

# PID of the live process (not a zombie) whose command line contains $1 and whose name is $2
# (a scan of /proc with shell builtins, for when $! is not the process: setsid forks when
# it is started as a process group leader).
pid_with_arg() {
    local d pid comm
    for d in /proc/[0-9]*; do
        comm=""
        read -r comm 2>/dev/null <"$d/comm" || continue
        [ "$comm" = "$2" ] || continue
        pid="${d#/proc/}"
        alive "$pid" || continue
        if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF -- "$1"; then
            echo "$pid"
            return 0
        fi
    done
}

# The PID in pid file $1 if that process is alive and named $2.
pid_from_file() {
    local pid comm=""
    [ -r "$1" ] || return 0
    pid="$(tr -dc '0-9' <"$1")"
    [ -n "$pid" ] || return 0
    read -r comm 2>/dev/null <"/proc/$pid/comm" || return 0
    if [ "$comm" = "$2" ] && alive "$pid"; then
        echo "$pid"
    fi
}

stop_serial() {
    local i l pid
    for ((i = 0; i < MAX_SERIAL; i++)); do
        l="${LETTERS[$i]}"
        for pid in $(pid_from_file "$SERIAL_DIR/reader-$l.pid" serial-reader) \
            $(pid_from_file "$SERIAL_DIR/socat-$l.pid" socat); do
            kill_pid "$pid"
        done
        rm -f "$SERIAL_DIR/reader-$l.pid" "$SERIAL_DIR/socat-$l.pid"
    done
    rm -f "$SERIAL_DIR"/*.sock "$SERIAL_DIR"/host-? "$SERIAL_DIR"/reader-? 2>/dev/null || true
}

wait_path() {
    local path="$1" deadline
    deadline=$(($(now_ms) + 5000))
    until [ -e "$path" ]; do
        [ "$(now_ms)" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

# Every serial reader runs (socat, reader, control socket) with the current binary.
serial_healthy() {
    local i l
    [ "$SERIAL" -gt 0 ] || return 0
    [ -n "${SERIAL_SRC:-}" ] && cmp -s "$SERIAL_SRC" "$SERIAL_DIR/serial-reader" || return 1
    for ((i = 0; i < SERIAL; i++)); do
        l="${LETTERS[$i]}"
        [ -n "$(pid_from_file "$SERIAL_DIR/socat-$l.pid" socat)" ] || return 1
        [ -n "$(pid_from_file "$SERIAL_DIR/reader-$l.pid" serial-reader)" ] || return 1
        [ -S "$SERIAL_DIR/$l.sock" ] || return 1
    done
}

# Record the PID of a process just started in the background ($1: $!, $2: name, $3: an
# argument only it has, $4: pid file).
record_pid() {
    local pid="" comm="" deadline
    deadline=$(($(now_ms) + 3000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        # $! is the process once setsid has exec'd it; a scan finds it if setsid forked.
        comm=""
        read -r comm 2>/dev/null <"/proc/$1/comm" || true
        if [ "$comm" = "$2" ] && alive "$1"; then
            pid="$1"
        else
            pid="$(pid_with_arg "$3" "$2")"
        fi
        [ -z "$pid" ] || break
        sleep 0.02
    done
    [ -n "$pid" ] || die "$2 ($3) exited at start"
    echo "$pid" >"$4"
}

start_serial() {
    local i l
    mkdir -p "$SERIAL_DIR"
    echo "$SERIAL" >"$SERIAL_DIR/count"
    [ "$SERIAL" -gt 0 ] || return 0
    command -v socat >/dev/null 2>&1 || die "socat not found; run: $0 install"
    if ! cmp -s "$SERIAL_SRC" "$SERIAL_DIR/serial-reader"; then
        cp "$SERIAL_SRC" "$SERIAL_DIR/serial-reader.tmp.$$"
        mv -f "$SERIAL_DIR/serial-reader.tmp.$$" "$SERIAL_DIR/serial-reader"
    fi
    for ((i = 0; i < SERIAL; i++)); do
        l="${LETTERS[$i]}"
        setsid socat "pty,raw,echo=0,link=$SERIAL_DIR/reader-$l" "pty,raw,echo=0,link=$SERIAL_DIR/host-$l" \
            </dev/null >"$SERIAL_DIR/socat-$l.log" 2>&1 9>&- &
        record_pid "$!" socat "link=$SERIAL_DIR/reader-$l" "$SERIAL_DIR/socat-$l.pid"
        wait_path "$SERIAL_DIR/reader-$l" && wait_path "$SERIAL_DIR/host-$l" ||
            die "socat did not make the pty pair for serial reader $l (log: $SERIAL_DIR/socat-$l.log)"
        setsid "$SERIAL_DIR/serial-reader" --port "$SERIAL_DIR/reader-$l" --control "$SERIAL_DIR/$l.sock" \
            </dev/null >"$SERIAL_DIR/reader-$l.log" 2>&1 9>&- &
        record_pid "$!" serial-reader "$SERIAL_DIR/reader-$l" "$SERIAL_DIR/reader-$l.pid"
        wait_path "$SERIAL_DIR/$l.sock" ||
            die "the simulated serial reader $l did not start (log: $SERIAL_DIR/reader-$l.log)"
    done
}

# Write $2 to file $1 only if it differs (atomically, via a rename).
write_if_changed() {
    local file="$1" text="$2"
    if [ -f "$file" ] && [ "$(cat "$file")" = "$text" ]; then
        return 0
    fi
    printf '%s\n' "$text" >"$file.tmp.$$"
    mv -f "$file.tmp.$$" "$file"
}

# Copy the driver for each entry. A copy is replaced by a rename, never rewritten in place, so a
# pcscd that still maps the old file is not disturbed.
install_drivers() {
    local src i dst
    src="$(find_driver)"
    mkdir -p "$DRIVER_DIR"
    for ((i = 0; i < ENTRIES; i++)); do
        dst="$DRIVER_DIR/libifdvpcd-${LETTERS[$i]}.so"
        if ! cmp -s "$src" "$dst"; then
            cp "$src" "$dst.tmp.$$"
            mv -f "$dst.tmp.$$" "$dst"
        fi
    done
}

drivers_current() {
    local src i
    src="$(find_driver)"
    for ((i = 0; i < ENTRIES; i++)); do
        cmp -s "$src" "$DRIVER_DIR/libifdvpcd-${LETTERS[$i]}.so" || return 1
    done
}

# ---------------------------------------------------------------------------------------------
# health

# The slot ports nobody listens on (one pass over /proc/net/tcp*).
missing_ports() {
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v want="$(slot_ports)" '
        $4 == "0A" { split($2, a, ":"); up[a[length(a)]] = 1 }
        END {
            n = split(want, w, " ")
            for (i = 1; i <= n; i++) {
                if (!(sprintf("%04X", w[i]) in up)) { printf "%s%s", sep, w[i]; sep = " " }
            }
        }'
}

# "PID (command)" of the processes listening on TCP port $1, for error messages.
port_owner() {
    local hex inodes d fd link out=()
    hex="$(printf '%04X' "$1")"
    inodes="$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        awk -v p="$hex" '$4 == "0A" { split($2, a, ":"); if (a[length(a)] == p) print $10 }')"
    [ -n "$inodes" ] || return 0
    for d in /proc/[0-9]*; do
        for fd in "$d"/fd/*; do
            link="$(readlink "$fd" 2>/dev/null)" || continue
            case "$link" in
            socket:\[*\])
                if grep -qx "${link//[^0-9]/}" <<<"$inodes"; then
                    out+=("${d#/proc/} ($(cat "$d/comm" 2>/dev/null))")
                    break
                fi
                ;;
            esac
        done
    done
    echo "${out[*]:-unknown process}"
}

# pcscd answers and lists exactly our readers (skipped if pcsc_scan is not installed).
readers_listed() {
    command -v pcsc_scan >/dev/null 2>&1 || return 0
    local listed expected
    listed="$(timeout 5 pcsc_scan -r 2>/dev/null | sed -n 's/^[0-9]*: //p')" || return 1
    expected="$(slot_readers | tr '|' '\n')"
    if [ "$SERIAL" -gt 0 ]; then
        expected+=$'\n'"$(serial_readers | tr '|' '\n')"
    fi
    [ "$listed" = "$expected" ]
}

# Our pcscd runs, with the current config, and serves the socket and every slot port.
healthy() {
    local pid run_pid
    pid="$(our_pid)"
    [ -n "$pid" ] || return 1
    [ -S "$RUN_DIR/pcscd.comm" ] || return 1
    if [ -r "$RUN_DIR/pcscd.pid" ]; then
        run_pid="$(tr -dc '0-9' <"$RUN_DIR/pcscd.pid")"
        [ "$run_pid" = "$pid" ] || return 1
    fi
    [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$(reader_conf_text)" ] || return 1
    drivers_current || return 1
    serial_healthy || return 1
    [ -z "$(missing_ports)" ] || return 1
    readers_listed
}

log_tail() {
    if [ -s "$LOG_FILE" ]; then
        echo "--- last lines of $LOG_FILE:" >&2
        tail -n 20 "$LOG_FILE" >&2
    fi
}

# ---------------------------------------------------------------------------------------------
# start / stop

take_lock() {
    mkdir -p "$STATE_DIR"
    exec 9>"$LOCK_FILE"
    if command -v flock >/dev/null 2>&1; then
        flock -w 60 9 || die "another pcsc-env.sh holds $LOCK_FILE for more than 60 s"
    fi
}

do_start() {
    SERIAL_SRC=""
    if [ "$SERIAL" -gt 0 ]; then
        SERIAL_SRC="$(serial_reader_source)"
    fi
    if healthy; then
        echo "pcsc-env: pcscd already running (pid $(our_pid)), $((ENTRIES * 2)) slots"
        write_if_changed "$ENV_FILE" "$(env_text)"
        return 0
    fi
    command -v pcscd >/dev/null 2>&1 || die "pcscd not found; run: $0 install"
    stop_all

    # A slot port held by another program makes vpcd fail that entry: say so now.
    local p closed busy=""
    closed=" $(missing_ports) "
    for p in $(slot_ports); do
        if [[ "$closed" != *" $p "* ]]; then
            busy+="${busy:+, }$p by $(port_owner "$p")"
        fi
    done
    [ -z "$busy" ] || die "vpcd slot ports already in use: $busy"

    install_drivers
    start_serial
    write_if_changed "$CONF" "$(reader_conf_text)"
    # The env file is left in place while pcscd restarts (tests may be reading it); it is
    # rewritten below if the slots changed.
    if [ -f "$LOG_FILE" ]; then
        mv -f "$LOG_FILE" "$LOG_FILE.old"
    fi

    # --foreground keeps pcscd as the PID we started (and sends its log to the file);
    # setsid detaches it from our session so it outlives this script and the caller's
    # terminal. Close the lock fd so pcscd does not hold our lock forever.
    # shellcheck disable=SC2086 # SSCARD_PCSCD_ARGS is a list of extra flags (e.g. "-d -a")
    setsid pcscd --foreground -c "$CONF" ${SSCARD_PCSCD_ARGS:-} </dev/null >"$LOG_FILE" 2>&1 9>&- &
    local pid=$! deadline down="" run_pid adopted
    echo "$pid" >"$PID_FILE"

    deadline=$(($(now_ms) + START_TIMEOUT_S * 1000))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        if ! alive "$pid" && adopted="$(find_our_pcscd)" && [ -n "$adopted" ]; then
            # setsid forks when it is started as a process group leader (a caller with job
            # control): then $! is setsid, not pcscd.
            pid="$adopted"
            echo "$pid" >"$PID_FILE"
        fi
        if ! alive "$pid"; then
            rm -f "$PID_FILE"
            log_tail
            die "pcscd (pid $pid) exited during start-up"
        fi
        # pcscd keeps running when a reader fails to initialise: give up at once then.
        if grep -q 'init failed' "$LOG_FILE" 2>/dev/null; then
            kill_pid "$pid"
            rm -f "$PID_FILE"
            log_tail
            die "pcscd could not initialise a reader (log: $LOG_FILE)"
        fi
        if [ -S "$RUN_DIR/pcscd.comm" ]; then
            down="$(missing_ports)"
            [ -n "$down" ] || break
        fi
        sleep 0.05
    done
    if [ ! -S "$RUN_DIR/pcscd.comm" ] || [ -n "$down" ]; then
        local what="socket $RUN_DIR/pcscd.comm"
        if [ -S "$RUN_DIR/pcscd.comm" ]; then
            what="vpcd ports $down"
        fi
        kill_pid "$pid"
        rm -f "$PID_FILE"
        log_tail
        die "pcscd did not come up (waited up to ${START_TIMEOUT_S}s): $what not listening"
    fi
    if [ -r "$RUN_DIR/pcscd.pid" ]; then
        run_pid="$(tr -dc '0-9' <"$RUN_DIR/pcscd.pid")"
        if [ -n "$run_pid" ] && [ "$run_pid" != "$pid" ]; then
            kill_pid "$pid"
            rm -f "$PID_FILE"
            die "pcscd wrote pid $run_pid to $RUN_DIR/pcscd.pid but we started $pid"
        fi
    fi
    if ! readers_listed; then
        kill_pid "$pid"
        rm -f "$PID_FILE"
        log_tail
        die "pcscd does not list the expected readers ($(slot_readers)${SERIAL:+|$(serial_readers)})"
    fi

    write_if_changed "$ENV_FILE" "$(env_text)"
    echo "pcsc-env: pcscd running (pid $pid), $((ENTRIES * 2)) slots on ports $(slot_ports)"
    if [ "$SERIAL" -gt 0 ]; then
        echo "pcsc-env: $SERIAL simulated serial reader(s) with libccidtwin: $(serial_readers)"
    fi
}

do_stop() {
    local pid
    pid="$(our_pid)"
    stop_all
    if [ -n "$pid" ]; then
        echo "pcsc-env: pcscd stopped (pid $pid)"
    else
        echo "pcsc-env: pcscd not running"
    fi
}

# The entry count pcscd runs with now (from our reader.conf), for status.
current_entries() {
    local n
    n="$(grep -c '^FRIENDLYNAME "SSCard Virtual' "$CONF" 2>/dev/null || true)"
    if [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le "$MAX_ENTRIES" ]; then
        echo "$n"
    fi
}

# ---------------------------------------------------------------------------------------------
# status / env

cmd_status() {
    local pid others n
    pid="$(our_pid)"
    if [ -z "$pid" ]; then
        others="$(all_pcscd_pids)"
        if [ -n "$others" ]; then
            echo "not running (a pcscd not started by this script runs: pid $others)"
        else
            echo "not running"
        fi
        return 3
    fi
    n="$(current_entries)"
    ENTRIES="${n:-$ENTRIES}"
    echo "running"
    echo "pid: $pid"
    echo "config: $CONF"
    echo "log: $LOG_FILE"
    echo "readers:"
    if command -v pcsc_scan >/dev/null 2>&1; then
        timeout 5 pcsc_scan -r 2>&1 | sed -n 's/^[0-9]*: /  /p'
    else
        slot_readers | tr '|' '\n' | sed 's/^/  /'
    fi
    echo "ports: $(slot_ports)"
    if [ -n "$(missing_ports)" ]; then
        echo "warning: vpcd ports not listening: $(missing_ports)"
    fi
}

cmd_env() {
    if [ "$ENTRIES_GIVEN" -eq 0 ] && [ -r "$ENV_FILE" ]; then
        cat "$ENV_FILE"
    else
        env_text
    fi
}

# ---------------------------------------------------------------------------------------------

main() {
    [ "$#" -ge 1 ] || usage
    local cmd="$1"
    shift
    case "$cmd" in
    install)
        [ "$#" -eq 0 ] || usage
        cmd_install
        ;;
    start)
        parse_readers_opt "$@"
        take_lock
        do_start
        ;;
    stop)
        [ "$#" -eq 0 ] || usage
        take_lock
        do_stop
        ;;
    restart)
        parse_readers_opt "$@"
        take_lock
        do_stop
        do_start
        ;;
    status)
        [ "$#" -eq 0 ] || usage
        cmd_status
        ;;
    env)
        parse_readers_opt "$@"
        cmd_env
        ;;
    -h | --help | help) usage ;;
    *)
        echo "pcsc-env: unknown command: $cmd" >&2
        usage
        ;;
    esac
}

main "$@"
