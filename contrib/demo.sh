#!/bin/bash
# The main job: install what is missing, build, make three sample layers,
# mount their union with stratafs and show what a user sees, next to the
# kernel overlayfs on the same layers.  Run as root.
# Then the same layers again with an upper layer, to show writes.
# --keep leaves the union mounted at /tmp/stratafs-demo/merged.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/deps.sh
bash contrib/build.sh
S=$PWD/build/stratafs

D=/tmp/stratafs-demo
for m in "$D/merged" "$D/kernel"; do
	mountpoint -q "$m" 2>/dev/null && umount "$m"
done
rm -rf "$D"
mkdir -p "$D"/{base,app,patch,merged,kernel}

# bottom layer: a small base image
mkdir -p "$D"/base/etc "$D"/base/usr/share/doc/demo "$D"/base/var/cache/apt
echo 'NAME="Demo Linux"' > "$D"/base/etc/os-release
echo 'motd from base' > "$D"/base/etc/motd
echo 'base docs' > "$D"/base/usr/share/doc/demo/README
echo 'stale' > "$D"/base/var/cache/apt/pkgcache.bin
# middle layer: an application, removing the apt cache (OCI whiteout)
mkdir -p "$D"/app/usr/bin "$D"/app/var/cache/apt
printf '#!/bin/sh\necho hello from the app layer\n' > "$D"/app/usr/bin/hello
chmod 755 "$D"/app/usr/bin/hello
touch "$D"/app/var/cache/apt/.wh.pkgcache.bin
# top layer: a patch replacing motd, deleting the docs (kernel whiteout)
# and replacing /etc/app with an opaque directory
mkdir -p "$D"/patch/etc "$D"/patch/usr/share/doc
echo 'motd from patch' > "$D"/patch/etc/motd
mknod "$D"/patch/usr/share/doc/demo c 0 0

echo "== layers (top first): patch, app, base"
echo "== mounting: stratafs -o lowerdir=$D/patch:$D/app:$D/base $D/merged"
"$S" -o "lowerdir=$D/patch:$D/app:$D/base" "$D/merged"
# the kernel does not read OCI ".wh." markers: give it the same layers with
# the marker in its own format (a 0/0 character device)
cp -a "$D/app" "$D/app-kernel"
rm "$D/app-kernel/var/cache/apt/.wh.pkgcache.bin"
mknod "$D/app-kernel/var/cache/apt/pkgcache.bin" c 0 0
mount -t overlay overlay -o "ro,lowerdir=$D/patch:$D/app-kernel:$D/base" "$D/kernel"

echo "== the merged tree"
(cd "$D/merged" && find . | sort)
echo "== cat etc/motd (top layer wins):   $(cat "$D"/merged/etc/motd)"
echo "== run usr/bin/hello (middle layer): $("$D"/merged/usr/bin/hello)"
echo "== usr/share/doc/demo whited out:    $(ls "$D"/merged/usr/share/doc/demo 2>&1 || true)"
echo "== var/cache/apt is empty:           [$(ls -A "$D"/merged/var/cache/apt)]"
echo "== mount table:                      $(grep " $D/merged " /proc/mounts)"
if diff <(cd "$D/merged" && find . -printf '%p %M %s %l\n' | sort) \
	<(cd "$D/kernel" && find . -printf '%p %M %s %l\n' | sort); then
	echo "== the kernel overlayfs shows exactly the same tree"
else
	echo "== DIFFERENCE from the kernel overlayfs (see above)"
	exit 1
fi
umount "$D/kernel"
fusermount3 -u "$D/merged"

echo
echo "== now writable: the same layers with upperdir=$D/upper, workdir=$D/work"
mkdir -p "$D/upper" "$D/work"
"$S" -o "lowerdir=$D/patch:$D/app:$D/base,upperdir=$D/upper,workdir=$D/work" "$D/merged"
echo 'edited in the container' >> "$D"/merged/etc/os-release   # copy-up
rm "$D"/merged/usr/bin/hello                                  # whiteout
rm -rf "$D"/merged/var/cache && mkdir "$D"/merged/var/cache    # opaque dir
echo 'new config' > "$D"/merged/etc/app.conf
echo "== merged view now:"
(cd "$D/merged" && find . | sort)
echo "== the changes all went to the upper layer (whiteouts are 0/0 devices):"
(cd "$D/upper" && find . -printf '%M %p\n' | sort -k2)
echo "== etc/os-release through the mount: $(tr '\n' ' ' < "$D"/merged/etc/os-release)"
echo "== and in the base layer, untouched:  $(cat "$D"/base/etc/os-release)"
if [ "${1:-}" = --keep ]; then
	echo "== left mounted at $D/merged (fusermount3 -u $D/merged to unmount)"
else
	fusermount3 -u "$D/merged"
	echo "== unmounted"
fi
