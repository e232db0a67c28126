#!/bin/sh
# Minimal per-project CLI that follows docs/cli-contract.md.
#
# opskit runs it as   CLI COMMAND PROJECT [ENV] [flags...]
# with cwd = the project folder and OPSKIT_PROJECT, OPSKIT_ENV, OPSKIT_ROOT set.
#
#   backup  PROJECT [ENV]                          [--dry-run] [--json]
#   restore PROJECT ENV [--name ARCHIVE | --latest] [--list] [--dry-run] [--yes] [--json]
#   sync    PROJECT --from ENV --to ENV            [--dry-run] [--yes] [--json]
#   promote PROJECT --from ENV --to ENV            [--dry-run] [--yes] [--json]
#
# Exit codes: 0 success, 1 error, 2 cancelled by the user.
set -eu

# ---- project-specific parts: replace these placeholders -----------------------------

# The environments of the project, in promotion order (as in project.yaml).
project_environments() { echo "dev int prod"; }

# The folder whose content is backed up for ENV (absolute).
project_data_dir() { printf '%s/%s/data\n' "$PWD" "$1"; }

# The folder that holds the archives of ENV (absolute): {backup.dir}/{project}/{env}.
project_backup_dir() { printf '%s/backups/%s/%s\n' "${OPSKIT_ROOT:-/opt/data}" "$PROJECT" "$1"; }

# Allowed sync directions, one "FROM TO" pair per line.
project_sync_pairs() { printf '%s\n' "prod dev" "prod int"; }

# Copy data from env $1 to env $2. Secrets come from the environment, never from argv.
project_sync() { warn "project_sync is a placeholder: nothing copied from $1 to $2"; }

# Promote code from env $1 to env $2.
project_promote() { warn "project_promote is a placeholder: nothing promoted from $1 to $2"; }

# ---- contract plumbing ----------------------------------------------------------------

CMD= PROJECT= ENV= FROM= TO= NAME=
DRY_RUN=0 YES=0 JSON=0 LATEST=0 LIST=0
PART=                                   # partial archive removed on failure or Ctrl-C

# Colour only when NO_COLOR is unset (any value disables it) and stdout/stderr are terminals.
if [ -z "${NO_COLOR+x}" ] && [ -t 1 ] && [ -t 2 ]; then
    RED=$(printf '\033[31m') YELLOW=$(printf '\033[33m') RESET=$(printf '\033[0m')
else
    RED= YELLOW= RESET=
fi

err()  { printf '%s[error]%s %s\n' "$RED" "$RESET" "$*" >&2; }
warn() { printf '%s[warning]%s %s\n' "$YELLOW" "$RESET" "$*" >&2; }
die()  { err "$*"; exit 1; }
info() { printf '%s\n' "$*" >&2; }       # progress goes to stderr

cleanup() { if [ -n "$PART" ]; then rm -f "$PART"; fi; }
trap cleanup EXIT
trap 'cleanup; err "cancelled"; trap - EXIT; exit 2' INT

usage() { sed -n '7,12s/^# \{0,1\}//p' "$0"; }

# JSON string: escape backslash and double quote (paths and env names only).
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# confirm QUESTION: returns when confirmed; exit 1 without a terminal, exit 2 when declined.
confirm() {
    [ "$YES" -eq 1 ] && return 0
    [ -t 0 ] || die "$CMD needs --yes when stdin is not a terminal"
    printf '%s [y/N] ' "$1" >&2
    answer=
    read -r answer || answer=
    case $answer in
        y|Y|yes|YES) return 0 ;;
        *) err "cancelled"; exit 2 ;;
    esac
}

check_env() {
    for e in $(project_environments); do [ "$e" = "$1" ] && return 0; done
    die "$PROJECT: unknown environment '$1' (known: $(project_environments))"
}

need_value() {
    case ${2:-} in ''|-*) die "$1 needs a value" ;; esac
}

# result TEXT JSON: the result on stdout, as JSON with --json, else as text.
result() {
    if [ "$JSON" -eq 1 ]; then printf '%s\n' "$2"; else printf '%s\n' "$1"; fi
}
dry() { if [ "$DRY_RUN" -eq 1 ]; then echo true; else echo false; fi; }

# ---- argument parsing -----------------------------------------------------------------

while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --yes)     YES=1 ;;
        --json)    JSON=1 ;;
        --latest)  LATEST=1 ;;
        --list)    LIST=1 ;;
        --from=*)  FROM=${1#*=} ;;
        --to=*)    TO=${1#*=} ;;
        --name=*)  NAME=${1#*=} ;;
        --from)    need_value "$@"; FROM=$2; shift ;;
        --to)      need_value "$@"; TO=$2; shift ;;
        --name)    need_value "$@"; NAME=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        -*)        die "unknown option: $1" ;;
        *)
            if   [ -z "$CMD" ];     then CMD=$1
            elif [ -z "$PROJECT" ]; then PROJECT=$1
            elif [ -z "$ENV" ];     then ENV=$1
            else die "unexpected argument: $1"
            fi ;;
    esac
    shift
done

[ -n "$CMD" ] || die "missing command (backup, restore, sync, promote)"
case $CMD in
    backup|restore|sync|promote) ;;
    *) die "unknown command: $CMD" ;;
esac
[ -n "$PROJECT" ] || die "$CMD needs PROJECT"
if [ -n "${OPSKIT_PROJECT:-}" ] && [ "$OPSKIT_PROJECT" != "$PROJECT" ]; then
    die "PROJECT '$PROJECT' differs from OPSKIT_PROJECT '$OPSKIT_PROJECT'"
fi
[ -z "$ENV" ] || check_env "$ENV"

# ---- commands -------------------------------------------------------------------------

cmd_backup() {
    if [ -n "$FROM$TO$NAME" ] || [ "$LATEST$LIST" != 00 ]; then
        die "backup takes no --from/--to/--name/--latest/--list"
    fi
    envs=${ENV:-$(project_environments)}
    stamp=$(date +%Y%m%d-%H%M%S)
    for e in $envs; do                          # check everything before writing anything
        src=$(project_data_dir "$e")
        [ -d "$src" ] || die "$PROJECT/$e: nothing to back up, $src does not exist"
        case $(project_backup_dir "$e") in /*) ;; *) die "$PROJECT/$e: backup folder is not absolute" ;; esac
    done
    json_items=
    for e in $envs; do
        src=$(project_data_dir "$e")
        dir=$(project_backup_dir "$e")
        archive=$dir/$PROJECT-$e-$stamp.tar.gz
        if [ "$DRY_RUN" -eq 1 ]; then
            [ "$JSON" -eq 1 ] || echo "would write $archive from $src"
        else
            info "backing up $PROJECT/$e"
            mkdir -p "$dir"
            PART=$archive.part
            tar -czf "$PART" -C "$src" .
            mv "$PART" "$archive"
            PART=
            [ "$JSON" -eq 1 ] || echo "$archive"     # the result: one absolute path a line
        fi
        json_items="$json_items${json_items:+,}{\"environment\":$(json_str "$e"),\"path\":$(json_str "$archive")}"
    done
    if [ "$JSON" -eq 1 ]; then
        printf '{"project":%s,"dry_run":%s,"archives":[%s]}\n' \
            "$(json_str "$PROJECT")" "$(dry)" "$json_items"
    fi
}

cmd_restore() {
    [ -n "$ENV" ] || die "restore needs PROJECT ENV"
    [ -z "$FROM$TO" ] || die "restore takes no --from/--to"
    dir=$(project_backup_dir "$ENV")
    text= items=                                # archive names sort by date: newest first
    for a in "$dir"/"$PROJECT-$ENV"-*.tar.gz; do
        [ -e "$a" ] || continue
        text="$a
$text" items="$(json_str "$a")${items:+,}$items"
    done
    if [ "$LIST" -eq 1 ]; then
        if [ "$JSON" -eq 1 ]; then printf '{"archives":[%s]}\n' "$items"; else printf '%s' "$text"; fi
        return 0
    fi
    if [ -n "$NAME" ] && [ "$LATEST" -eq 1 ]; then die "restore takes --name or --latest, not both"; fi
    if [ "$LATEST" -eq 1 ]; then
        NAME=$(printf '%s' "$text" | sed -n 1p)
        [ -n "$NAME" ] || die "$PROJECT/$ENV: no archive in $dir"
    fi
    [ -n "$NAME" ] || die "restore needs --name ARCHIVE or --latest"
    case $NAME in /*) archive=$NAME ;; *) archive=$dir/$NAME ;; esac
    [ -f "$archive" ] || die "archive not found: $archive"
    target=$(project_data_dir "$ENV")
    json=$(printf '{"project":%s,"environment":%s,"archive":%s,"dry_run":%s}' \
        "$(json_str "$PROJECT")" "$(json_str "$ENV")" "$(json_str "$archive")" "$(dry)")
    if [ "$DRY_RUN" -eq 1 ]; then
        result "would restore $archive into $target" "$json"
        return 0
    fi
    confirm "Replace the data of $PROJECT/$ENV with $archive?"
    mkdir -p "$target"
    tar -xzf "$archive" -C "$target"
    result "restored $PROJECT/$ENV from $archive" "$json"
}

cmd_move() {                                    # sync and promote: --from ENV --to ENV
    [ -z "$ENV" ] || die "$CMD takes --from ENV --to ENV, not ENV"
    if [ -n "$NAME" ] || [ "$LATEST$LIST" != 00 ]; then die "$CMD takes no --name/--latest/--list"; fi
    if [ -z "$FROM" ] || [ -z "$TO" ]; then die "$CMD needs --from ENV and --to ENV"; fi
    check_env "$FROM"; check_env "$TO"
    [ "$FROM" != "$TO" ] || die "$CMD: --from and --to are the same environment"
    if [ "$CMD" = sync ]; then
        project_sync_pairs | grep -qx "$FROM $TO" || die "sync from $FROM to $TO is not allowed"
    fi
    json=$(printf '{"project":%s,"from":%s,"to":%s,"dry_run":%s}' \
        "$(json_str "$PROJECT")" "$(json_str "$FROM")" "$(json_str "$TO")" "$(dry)")
    if [ "$DRY_RUN" -eq 1 ]; then
        result "would $CMD $PROJECT from $FROM to $TO" "$json"
        return 0
    fi
    confirm "$CMD $PROJECT from $FROM to $TO?"
    if [ "$CMD" = sync ]; then project_sync "$FROM" "$TO"; else project_promote "$FROM" "$TO"; fi
    result "$CMD $PROJECT from $FROM to $TO: done" "$json"
}

case $CMD in
    backup)       cmd_backup ;;
    restore)      cmd_restore ;;
    sync|promote) cmd_move ;;
esac
