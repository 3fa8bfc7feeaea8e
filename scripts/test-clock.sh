#!/usr/bin/env bash
# Time is an input: the unit tier must pass on any date. Run it three times under
# libfaketime, with the whole process moved in time — about 40 days and 200 days from
# today, and half an hour after the next European DST change (the last Sunday of March
# or of October, 01:00 UTC), computed from today's real date.
#
# Needs `faketime` (Debian/Ubuntu: `sudo apt-get install faketime`; macOS: `brew install
# libfaketime`) and the test virtualenv (scripts/test.sh makes it; USAGE_TEST_VENV names
# another). Extra arguments go to pytest, e.g. `scripts/test-clock.sh -x tests/unit/test_x.py`.
# The integration tier is not run: its broker and store keep the real clock.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${USAGE_TEST_VENV:-.venv-test}"
PY="$VENV/bin/python"
if ! command -v faketime >/dev/null; then
    echo "scripts/test-clock.sh: needs libfaketime's 'faketime' command:" >&2
    echo "  Debian/Ubuntu: sudo apt-get install faketime    macOS: brew install libfaketime" >&2
    exit 2
fi
if [[ ! -x "$PY" ]]; then
    echo "scripts/test-clock.sh: no virtualenv at $VENV: run scripts/test.sh first" >&2
    exit 2
fi

# Durations (time.monotonic) stay real: only dates move.
export FAKETIME_DONT_FAKE_MONOTONIC=1 DONT_FAKE_MONOTONIC=1

# The next European DST change after now: last Sunday of March or October, 01:00 UTC.
dst_change="$("$PY" - <<'EOF'
from datetime import UTC, date, datetime, timedelta

def last_sunday(year: int, month: int) -> datetime:
    end = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    day = end - timedelta(days=(end.weekday() - 6) % 7)
    return datetime(day.year, day.month, day.day, 1, tzinfo=UTC)

now = datetime.now(UTC)
changes = [last_sunday(year, month) for year in (now.year, now.year + 1) for month in (3, 10)]
print(int(min(change for change in changes if change > now).timestamp()))
EOF
)"
after_dst=$((dst_change + 1800))

# label | faketime offset (relative: no local-time parsing, so no ambiguous hour) |
# the instant Python must then see (epoch seconds)
real_now="$(date +%s)"
runs=(
    "+40 days|+40d|$((real_now + 40 * 86400))"
    "+200 days|+200d|$((real_now + 200 * 86400))"
    "30 min after the DST change of $(date -u -d "@$dst_change" '+%Y-%m-%d %H:%M UTC')|+$((after_dst - real_now))|$after_dst"
)

summary=()
status=0
for run in "${runs[@]}"; do
    IFS='|' read -r label spec expected <<<"$run"
    echo "==> unit tier at $label (faketime '$spec')"
    # Check that Python really sees the moved clock (through the project's one clock).
    seen="$(faketime -f "$spec" "$PY" -c \
        'from shared.clock import system_clock; n = system_clock(); print(int(n.timestamp()), n.isoformat())')"
    echo "    Python sees: ${seen#* }"
    if (( ${seen%% *} < expected - 600 || ${seen%% *} > expected + 600 )); then
        echo "scripts/test-clock.sh: faketime did not move Python's clock to $expected" >&2
        exit 1
    fi
    log="$(mktemp)"
    if faketime -f "$spec" "$VENV/bin/pytest" -q -p no:cacheprovider \
        -m "not integration and not soak" "$@" 2>&1 | tee "$log"; then
        :
    else
        status=1
    fi
    summary+=("$label: $(tail -n 1 "$log")")
    rm -f "$log"
done

echo "==> summary"
printf '    %s\n' "${summary[@]}"
exit "$status"
