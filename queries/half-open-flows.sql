-- id: half-open-flows
-- title: Half-open connections: SYNs left unanswered or handshakes never completed
-- severity: medium
-- requires: flows
-- why: A flow in state S0 sent SYNs and never got an answer; many of them
--   to one destination mean the service, a firewall or NAT is dropping
--   them. SH/SHR flows saw a close with no handshake (the capture started
--   late, or state was lost).
-- action: Check the destination service and every hop's firewall and
--   conntrack for the destination named; compare with the container-side
--   capture when there is one.
SELECT concat(count(*), ' connection attempts from ', capture, ' to ', dst_ip, ':', dst_port,
              ' got no answer (', sum(coalesce(syn_retries, 0)), ' SYN retries)') AS finding,
       bundle, capture, dst_ip, dst_port, count(*) AS unanswered_flows,
       sum(coalesce(syn_retries, 0)) AS syn_retries, min(first_ts) AS first_ts, max(last_ts) AS last_ts
FROM flows
WHERE proto = 'tcp' AND conn_state = 'S0'
GROUP BY bundle, capture, dst_ip, dst_port
HAVING count(*) >= 10
ORDER BY unanswered_flows DESC, bundle, capture, dst_ip, dst_port
