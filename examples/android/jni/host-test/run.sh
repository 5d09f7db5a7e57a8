#!/usr/bin/env bash
# Compiles the Java mirror of org.famq.Famq and runs FamqHostTest against
# libfamq_jni.so on the host (ctest famq_jni_host).
#   run.sh JAVAC JAVA LIB_DIR WORK_DIR MODEL_DIR
set -euo pipefail
javac=$1 java=$2 lib_dir=$3 work=$4 model=$5
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rm -rf "$work"
mkdir -p "$work/classes"
"$javac" -Xlint:all -Werror -d "$work/classes" "$src"/org/famq/*.java
# Calibration text: whole lines (whole UTF-8 characters) of the family's validation split.
head -n 40 "$(dirname "$model")/eval/valid/fortunes.jsonl" >"$work/calib.txt"
exec "$java" -Xcheck:jni -Djava.library.path="$lib_dir" -cp "$work/classes" org.famq.FamqHostTest "$model" "$work"
