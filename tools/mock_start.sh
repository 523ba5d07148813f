# Sourced by the eval scripts that run `cascade run` against build/mock-llm:
# starts the mock on a free port, waits (bounded) until it listens, exports
# MOCK_URL, and stops it on exit.
#
#   mock_start BIN_DIR RECORDINGS LOG PORT_FILE WHO
mock_pid=
mock_port_file=
mock_cleanup() {
    if [ -n "$mock_pid" ]; then
        kill "$mock_pid" 2>/dev/null
        wait "$mock_pid" 2>/dev/null
    fi
    [ -z "$mock_port_file" ] || rm -f "$mock_port_file"
}
mock_start() {
    mock_port_file=$4
    rm -f "$mock_port_file"
    trap mock_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    "$1/mock-llm" --port 0 --port-file "$mock_port_file" --recordings "$2" \
        --log "$3" --log-bodies 0 &
    mock_pid=$!
    tries=0
    while [ ! -s "$mock_port_file" ]; do
        if ! kill -0 "$mock_pid" 2>/dev/null; then
            echo "$5: mock-llm exited before it was listening" >&2
            mock_pid=
            exit 1
        fi
        tries=$((tries + 1))
        [ $tries -le 100 ] || { echo "$5: mock-llm did not listen within 10 s" >&2; exit 1; }
        sleep 0.1
    done
    MOCK_URL=http://127.0.0.1:$(cat "$mock_port_file")
    export MOCK_URL
}
