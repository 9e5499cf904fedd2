#!/bin/sh
# Unit tests of hello's CGI scripts. POSIX sh and its builtins only: the test image has
# nothing but busybox. Run from anywhere: sh test/run.sh. Prints one "ok"/"not ok" line a
# test, then "N passed, N failed"; exits 1 if any test failed, 2 if it could not run.
set -u

case $0 in
*/*) cd "${0%/*}/.." || exit 2 ;;
*) cd .. || exit 2 ;;
esac
if [ ! -f test/expected.txt ] || [ ! -d www/cgi-bin ]; then
	echo "run.sh: found no test/expected.txt or www/cgi-bin in $PWD: the image lacks the example's files (copies: [local] in .pipeline/blubber.yaml)" >&2
	exit 2
fi

CR=$(printf '\r')
NL='
'
passed=0
failed=0

pass() {
	passed=$((passed + 1))
	echo "ok - $1"
}

# flunk NAME DETAIL...: records a failure and prints each detail line indented.
flunk() {
	failed=$((failed + 1))
	echo "not ok - $1"
	shift
	for detail in "$@"; do
		echo "#   $detail"
	done
}

# cgi SCRIPT QUERY [METHOD] runs www/cgi-bin/SCRIPT as busybox httpd would and sets
# status (200 unless a Status header says otherwise), ctype and body (without its final
# newline).
cgi() {
	out=$(REQUEST_METHOD=${3:-GET} QUERY_STRING=$2 "./www/cgi-bin/$1")
	status=200
	ctype=
	body=
	inbody=
	while IFS= read -r line; do
		if [ -n "$inbody" ]; then
			body=${body:+$body$NL}$line
			continue
		fi
		line=${line%"$CR"}
		case $line in
		'') inbody=1 ;;
		Status:*)
			status=${line#Status: }
			status=${status%% *}
			;;
		Content-Type:*) ctype=${line#Content-Type: } ;;
		esac
	done <<EOF
$out
EOF
}

for script in healthz hello; do
	file=www/cgi-bin/$script
	shebang=
	read -r shebang <"$file"
	if [ ! -x "$file" ]; then
		flunk "$file is executable" "busybox httpd runs only executable CGI scripts: chmod +x $file"
	elif [ "$shebang" != "#!/bin/sh" ]; then
		flunk "$file starts with #!/bin/sh" "found: $shebang"
	else
		pass "$file is an executable sh script"
	fi
done

cgi healthz ""
if [ "$status" = 200 ] && [ "$ctype" = text/plain ] && [ "$body" = ok ]; then
	pass "GET /cgi-bin/healthz"
else
	flunk "GET /cgi-bin/healthz" "want: 200 text/plain ok" "got:  $status $ctype $body"
fi

cases=0
while IFS= read -r line; do
	case $line in
	'#'* | '') continue ;;
	esac
	cases=$((cases + 1))
	query=${line%% | *}
	rest=${line#* | }
	want_status=${rest%% | *}
	want_body=${rest#* | }
	[ "$query" = - ] && query=
	cgi hello "$query"
	if [ "$status" = "$want_status" ] && [ "$ctype" = application/json ] && [ "$body" = "$want_body" ]; then
		pass "GET /cgi-bin/hello?$query"
	else
		flunk "GET /cgi-bin/hello?$query" \
			"want: $want_status application/json $want_body" \
			"got:  $status $ctype $body" \
			"(the expected answers are in test/expected.txt)"
	fi
done <test/expected.txt
if [ "$cases" -eq 0 ]; then
	flunk "test/expected.txt has cases" "found no QUERY | STATUS | BODY line"
fi

cgi hello "name=x" POST
if [ "$status" = 405 ]; then
	pass "POST /cgi-bin/hello is refused"
else
	flunk "POST /cgi-bin/hello is refused" "want: 405" "got:  $status $body"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
