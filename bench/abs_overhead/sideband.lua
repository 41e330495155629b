-- bench/abs_overhead.sh, sideband: the ASE protocol as a gateway speaks it,
-- a POST /ase/request per client request and, for each (every one is
-- allowed: no list entry matches), the paired POST /ase/response with the
-- same X-CorrelationID (response_code 200, content-length 100), so that
-- behavioural detection counts both the request and its answer.
--
-- Calls alternate: request call, response call, request call... wrk gives a
-- script no connection of its own (64 connections share this one script),
-- so a response call cannot follow its request call on the same connection;
-- instead the response call goes LAG request calls later, for the request
-- call that was sent LAG calls earlier: with 64 connections each holding one
-- call at a time, that request was answered long before (a gateway likewise
-- makes the response call only after the backend answered). The LAG
-- (1,024) request tickets waiting meanwhile fit ASE's pairing table (16,384
-- slots). The first LAG calls of a run are request calls only.
--
-- Clients: source_ip rotates over 5,000 loopback addresses 127.0.x.y, the
-- Authorization bearer token over 5,000 values (an independent permutation)
-- and the url over 50 paths; the bodies are formatted once, in init.
local ADDRS, TOKENS, PATHS, N, LAG = 5000, 5000, 50, 10007, 1024
local heads, resp = {}, nil
local line = "POST /ase/request HTTP/1.1\r\n"
local rline = "POST /ase/response HTTP/1.1\r\n"
local run -- a prefix of the correlation ids, fresh for each wrk run
local sent, calls = 0, 0 -- request calls sent; calls sent

function init(args)
	run = string.format("%x%04x", os.time(), math.random(0, 65535))
	for k = 0, N - 1 do
		local a = k % ADDRS
		local ip = string.format("127.0.%d.%d", math.floor(a / 250), a % 250 + 1)
		local tok = (k * 2003) % TOKENS
		local body = string.format('{"source_ip": "%s", "source_port": "%d", "method": "GET", "url": "/api/r%d/items/%d", "http_version": "1.1", ' ..
			'"headers": [{"Host": "shop.example.com"}, {"User-Agent": "abs-overhead"}, {"Accept": "*/*"}, {"Authorization": "Bearer abs-bench-token-%d"}]}',
			ip, 40000 + k % 20000, (k * 7) % PATHS, k % 97, tok)
		-- wrk.format writes the request line first: the rest (headers with
		-- Host, Content-Length, the blank line and the body) follows the
		-- X-CorrelationID header inserted per call.
		local r = wrk.format("POST", "/ase/request", {["Content-Type"] = "application/json"}, body)
		heads[k] = r:sub(#line + 1)
	end
	local body = '{"response_code": 200, "response_status": "OK", "http_version": "1.1", "headers": [{"content-length": "100"}]}'
	resp = wrk.format("POST", "/ase/response", {["Content-Type"] = "application/json"}, body):sub(#rline + 1)
end

function request()
	calls = calls + 1
	if calls % 2 == 0 and sent > LAG then
		return rline .. "X-CorrelationID: " .. run .. "-" .. (sent - LAG) .. "\r\n" .. resp
	end
	local k = sent % N
	sent = sent + 1
	return line .. "X-CorrelationID: " .. run .. "-" .. sent .. "\r\n" .. heads[k]
end
