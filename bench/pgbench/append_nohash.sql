\set i random(1, 1000000000)
SELECT * FROM bench_append_step(false, 'append-' || :client_id || '-' || :i, 'append', -3, NULL, ARRAY['Received'], ARRAY[1], ARRAY['{"text":"停电了，整个小区都没电","caller":"13800000000","channel":"sms"}'::jsonb], ARRAY['{"actor":"channel-sms","channel":"sms","correlation_id":"abc","idempotency_key":"k"}'::jsonb]);
