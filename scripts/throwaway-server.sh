# Sourced by the demo and the benchmarks: a throwaway PostgreSQL server in a temporary
# directory, reached over a Unix socket there, removed when the calling script exits.
#   throwaway_server <name> <port> [postgresql.conf lines...]
# sets PGHOST, PGPORT, PGDATABASE, PGUSER and $server_dir, and starts the server with
# pg_connbudget preloaded.
throwaway_server() {
  local name=$1 port=$2
  shift 2
  PATH="$(pg_config --bindir):$PATH"
  server_dir=$(mktemp -d "/tmp/pg_connbudget-$name.XXXXXX")
  export PGHOST="$server_dir" PGPORT="$port" PGDATABASE=postgres PGUSER=postgres
  trap 'pg_ctl -D "$server_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$server_dir"' EXIT
  initdb -D "$server_dir/data" -A trust -U postgres >/dev/null
  {
    echo "shared_preload_libraries = 'pg_connbudget'"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$server_dir'"
    echo "port = $port"
    printf '%s\n' "$@"
  } >> "$server_dir/data/postgresql.conf"
  pg_ctl -D "$server_dir/data" -l "$server_dir/server.log" -w start >/dev/null
}
