-- Cycles through pre-built POSTs ("path<TAB>body" per line); each wrk thread takes its own
-- share (thread k sends lines k, k+n, k+2n, …) so no message is sent twice before the list
-- runs out.
local posts = {}
local counter = 0
local step = 1
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    local tab = string.find(line, "\t", 1, true)
    posts[#posts + 1] = { string.sub(line, 1, tab - 1), string.sub(line, tab + 1) }
  end
  file:close()
  step = tonumber(args[2])
  counter = id
end

function request()
  local post = posts[(counter % #posts) + 1]
  counter = counter + step
  return wrk.format("POST", post[1], { ["Content-Type"] = "text/xml" }, post[2])
end
