#!/usr/bin/env bash
# A/B timing of the kernels at two revisions in one process (see ab_kernels.c):
#   bench/ab/run.sh [-r REV] [-i ISA] [CASES|all [PAIRS]]
# A is the kernels at git revision REV (default HEAD), B those of the working tree, both the
# instruction-set variant ISA (default avx512; avx512zen, avx2 or baseline), compiled by CMake
# with the project's own flags. Needs cmake, ninja (pip install ".[test]") and a C compiler.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rev=HEAD
isa=avx512
while getopts r:i: opt; do
    case "$opt" in
    r) rev="$OPTARG" ;;
    i) isa="$OPTARG" ;;
    *) sed -n '2,6p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/A"
git -C "$root" archive "$rev" | tar -x -C "$work/A"
objects=()
for side in A B; do
    tree="$work/A"
    [ "$side" = B ] && tree="$root"
    cmake -S "$tree" -B "$work/build-$side" -G Ninja -DLOSSK_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release > /dev/null
    cmake --build "$work/build-$side" --target "lossk_$isa" > /dev/null
    # the variant's entry points renamed from *_ISA to *_A or *_B, so both link into one program;
    # one list for all the variant's objects, as one object may call another's entry point
    variant=("$work/build-$side/CMakeFiles/lossk_$isa.dir/src/"*.o)
    nm --defined-only -g "${variant[@]}" | awk -v isa="_$isa" -v side="_$side" \
        'NF == 3 { n = $3; if (substr(n, length(n) - length(isa) + 1) == isa) print n, substr(n, 1, length(n) - length(isa)) side }' \
        > "$work/rename"
    for obj in "${variant[@]}"; do
        out="$work/$side-$(basename "$obj")"
        objcopy --redefine-syms="$work/rename" "$obj" "$out"
        objects+=("$out")
    done
done
cc -O2 -fopenmp -I"$root/src" "$here/ab_kernels.c" "${objects[@]}" -lm -o "$work/ab_kernels"
"$work/ab_kernels" "$@"
