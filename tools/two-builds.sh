# Sourced by the before/after tools: builds expert-ops at git revision $rev in a temporary worktree and at the
# checkout, and sets $before and $after to the two runtime classpaths ($root, $rev set by the caller; the
# worktree is removed on exit).
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$root" worktree add --detach "$work/tree" "$rev" >/dev/null
echo "building expert-ops at $rev and at the checkout..." >&2
(cd "$work/tree" && mvn -B -q -DskipTests -pl expert-ops -am package >"$work/build-before.log" 2>&1)
(cd "$root" && mvn -B -q -DskipTests -pl expert-ops -am package >"$work/build-after.log" 2>&1)
source "$root/bin/spark-opens.sh"
cp_of() { echo "$1/expert-ops/target/expert-ops-0.1.0-SNAPSHOT.jar:$(cat "$1/expert-ops/target/classpath.txt")"; }
before=$(cp_of "$work/tree")
after=$(cp_of "$root")
