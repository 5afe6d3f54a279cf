# shellcheck shell=bash
# Phase timings for `up` and `test`: `phase NAME` closes the running phase and opens NAME.
# PHASE_T0 is kept between phases so a phase's start is the previous one's end.

PHASE_NAME=""
PHASE_T0=0
PHASE_REPORT=()
PHASE_FAILED_MARKED=0

phase() {
	phase_end
	PHASE_NAME=$1
	log "== $PHASE_NAME"
}

# phase_end: close the running phase, if any.
phase_end() {
	local now
	now=$(now_ms)
	if [[ -n $PHASE_NAME ]]; then
		PHASE_REPORT+=("$(printf '  %-18s %8s' "$PHASE_NAME" "$(fmt_ms $((now - PHASE_T0)))")")
	fi
	PHASE_NAME=""
	PHASE_T0=$now
}

# phase_fail: close the running phase marked as the one that failed.
phase_fail() {
	[[ -n $PHASE_NAME ]] || return 0
	# shellcheck disable=SC2034 # read by test_cleanup (testsuite.sh)
	PHASE_FAILED_MARKED=1
	PHASE_NAME="$PHASE_NAME (FAILED)"
	phase_end
}

phase_print() {
	phase_end
	((${#PHASE_REPORT[@]})) || return 0
	printf 'Timings:\n'
	printf '%s\n' "${PHASE_REPORT[@]}"
}
