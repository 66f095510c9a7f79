#!/bin/sh
# What the official image's entrypoint does, with setpriv (util-linux) in place of gosu:
# options alone mean redis-server; drop root after taking /data; and protected mode off
# unless a config file says otherwise. Without that last step Redis, started with no
# config and no password, refuses every client that is not on its loopback, which is
# every other container.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$(umask)" = 0022 ]; then umask 0077; fi
if [ "$1" = redis-server ]; then
  conf=
  if [ -f "${2:-}" ]; then conf=$2; fi
  if [ -z "$conf" ] || ! grep -q '^protected-mode' "$conf"; then
    shift
    if [ -n "$conf" ]; then shift; set -- "$conf" --protected-mode no "$@"; else set -- --protected-mode no "$@"; fi
    set -- redis-server "$@"
  fi
fi
exec "$@"
