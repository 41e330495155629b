-- bench/abs_overhead.sh, inline: GETs from many distinct client identities,
-- so that behavioural detection tracks many of them. Each request carries
-- X-Forwarded-For (enable_xff=true: the client address) rotating over 5,000
-- loopback addresses 127.0.x.y, an Authorization: Bearer token rotating over
-- 5,000 values (a permutation independent of the address: each address sends
-- several tokens and each token comes from several addresses) and one of 50
-- paths. The requests are formatted once, in init (a cycle of N, N prime so
-- the address, token and path sequences drift against each other from one
-- cycle to the next): the load generator's cost per request stays that of a
-- fixed request.
local ADDRS, TOKENS, PATHS, N = 5000, 5000, 50, 10007
local reqs, i = {}, 0

function init(args)
	for k = 0, N - 1 do
		local a = k % ADDRS
		local ip = string.format("127.0.%d.%d", math.floor(a / 250), a % 250 + 1)
		local tok = (k * 2003) % TOKENS -- 2003 is prime to 5,000: a permutation
		local path = string.format("/api/r%d/items/%d", (k * 7) % PATHS, k % 97)
		reqs[k] = wrk.format("GET", path, {
			["X-Forwarded-For"] = ip,
			["Authorization"] = "Bearer abs-bench-token-" .. tok,
			["User-Agent"] = "abs-overhead",
			["Accept"] = "*/*",
		})
	end
end

function request()
	local r = reqs[i]
	i = (i + 1) % N
	return r
end
