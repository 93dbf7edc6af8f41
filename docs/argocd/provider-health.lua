-- Argo CD health check for inferenceops.io/InferenceProvider and ClusterInferenceProvider
-- (Lua 5.1, as gopher-lua runs it). Install: docs/argocd/argocd-cm.yaml (see docs/gitops.md).
--
-- Order of the checks (first match wins):
--   being deleted                           -> Progressing
--   status.observedGeneration ~= generation -> Progressing (the operator has not seen the spec)
--   no Ready condition yet                  -> Progressing
--   Stalled=True (Unauthorized, SecretMissing, InsecureURL, DestinationDenied,
--     SecretNamespaceNotAllowed)            -> Degraded
--   Ready=False/RateLimited                 -> Progressing (the provider's pause ends by itself)
--   Ready=False (Unreachable, ...)          -> Degraded
--   Ready=True, or Unknown/NoCallsYet       -> Healthy (an unused account is not a fault)
-- hs.message is the Ready (or Stalled) message, with "; N/M endpoints Ready" when known.
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function msg(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Pending deletion"
  return hs
end

local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if status ~= nil and generation ~= nil and status.observedGeneration ~= nil
    and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. tostring(generation)
    .. " (observed " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local ready = condition(status, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to report status"
  return hs
end

local function with_counts(text)
  if status.endpointSummary ~= nil then
    return text .. "; " .. status.endpointSummary .. " endpoints Ready"
  end
  return text
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = with_counts(msg(stalled, "Stalled: " .. (stalled.reason or "")))
  return hs
end

if ready.status == "False" and ready.reason == "RateLimited" then
  hs.status = "Progressing"
  local text = msg(ready, "rate limited by the provider")
  if status.pausedUntil ~= nil then
    text = text .. " (until " .. status.pausedUntil .. ")"
  end
  hs.message = with_counts(text)
  return hs
end

if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = with_counts((ready.reason or "NotReady") .. ": " .. msg(ready, "not ready"))
  return hs
end

hs.status = "Healthy"
hs.message = with_counts(msg(ready, "ready"))
return hs
