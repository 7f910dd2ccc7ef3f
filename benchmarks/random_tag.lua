-- wrk script: every request GETs a tag chosen at random among COUNT, named PREFIX00000 to PREFIX<COUNT-1>
-- (five digits), so that a server cannot answer from one manifest it keeps at hand.
--   wrk ... -s random_tag.lua URL -- /v2/<name>/manifests/m- COUNT

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  prefix = args[1]
  count = tonumber(args[2])
  math.randomseed(seed)
end

function request()
  return wrk.format(nil, string.format("%s%05d", prefix, math.random(0, count - 1)))
end
