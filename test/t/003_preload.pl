# Without shared_preload_libraries the library refuses to load, with a hint;
# with it, CREATE EXTENSION elsewhere than asr.database is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->start;

my ($ret, $out, $err) = $node->psql('postgres', "LOAD 'asr'");
isnt($ret, 0, 'LOAD fails outside shared_preload_libraries');
like($err, qr/asr must be loaded via shared_preload_libraries/, 'error says why');
like($err, qr/HINT:.*shared_preload_libraries/, 'hint says what to do');

($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION asr');
isnt($ret, 0, 'CREATE EXTENSION fails without preload');
like($err, qr/shared_preload_libraries/, 'and names shared_preload_libraries');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'asr'"),
	'0', 'nothing was installed');

$node->stop;
done_testing();
