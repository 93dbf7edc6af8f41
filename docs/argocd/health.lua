-- Argo CD health check for inferenceops.io/InferenceEndpoint (Lua 5.1, as gopher-lua runs it).
-- Install: merge docs/argocd/argocd-cm.yaml into the argocd-cm ConfigMap (see docs/gitops.md).
--
-- Order of the checks (first match wins):
--   being deleted                          -> Progressing
--   status.observedGeneration ~= generation -> Progressing (the operator has not seen the spec)
--   no status / no phase yet               -> Progressing
--   phase Terminated                       -> Missing     (the remote endpoint is gone)
--   Stalled=True (phase Failed; InvalidSpec, SecretMissing, Unauthorized, NotFound,
--     DestinationDenied, InsecureURL, the providerRef reasons: ProviderMissing,
--     ProviderNotAllowed, ProviderMismatch, OverrideNotAllowed, SecretNamespaceNotAllowed)
--                                          -> Degraded
--   Ready=Unknown/ObservationStale         -> Unknown     (no successful poll for 3 intervals)
--   phase Sleeping / Suspended             -> Suspended
--   phase Running / Idle                   -> Healthy
--   phase Degraded                         -> Healthy, message "Degraded: ..." (it still serves)
--   Reconciling=True, or any other phase   -> Progressing
--   phase Unknown                          -> Unknown
-- hs.message is the message of the condition that decided; " (last poll failed: ...)" is
-- appended, except where the message is a failure's own (Terminated, Stalled, so also Failed)
-- or the generation lags.
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

if status == nil or status.phase == nil or status.phase == "" then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to report status"
  return hs
end

local phase = status.phase
local ready = condition(status, "Ready")
local synced = condition(status, "Synced")
local stalled = condition(status, "Stalled")
local reconciling = condition(status, "Reconciling")
if stalled ~= nil and stalled.status ~= "True" then
  stalled = nil
end
if reconciling ~= nil and reconciling.status ~= "True" then
  reconciling = nil
end

-- " (last poll failed: Reason: message)" while the provider does not answer.
local function with_poll_failure(text)
  if synced ~= nil and synced.status == "False" then
    local why = synced.reason or "Unknown"
    if synced.message ~= nil and synced.message ~= "" then
      why = why .. ": " .. synced.message
    end
    return text .. " (last poll failed: " .. why .. ")"
  end
  return text
end

if phase == "Terminated" then
  hs.status = "Missing"
  hs.message = msg(stalled, msg(ready, "the endpoint no longer exists at the provider"))
  return hs
end

if stalled ~= nil then
  hs.status = "Degraded"
  hs.message = msg(stalled, "Stalled: " .. (stalled.reason or phase))
  return hs
end

if phase == "Failed" then
  hs.status = "Degraded"
  local text = status.errorCode
  if status.errorMessage ~= nil then
    if text ~= nil then
      text = text .. ": " .. status.errorMessage
    else
      text = status.errorMessage
    end
  end
  hs.message = text or msg(ready, "the provider reports the endpoint failed")
  return hs
end

if ready ~= nil and ready.status == "Unknown" and ready.reason == "ObservationStale" then
  hs.status = "Unknown"
  hs.message = with_poll_failure(msg(ready, "no recent successful poll"))
  return hs
end

if phase == "Sleeping" or phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = with_poll_failure(msg(ready, "endpoint is " .. phase))
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  local text = msg(ready, "endpoint is " .. phase)
  if phase == "Degraded" then
    text = "Degraded: " .. text
  end
  hs.message = with_poll_failure(text)
  return hs
end

if reconciling ~= nil then
  hs.status = "Progressing"
  hs.message = with_poll_failure(msg(reconciling, "endpoint is " .. phase))
  return hs
end

if phase == "Unknown" then
  hs.status = "Unknown"
  hs.message = with_poll_failure(msg(ready, "the provider reports a phase the operator does not know"))
  return hs
end

-- Pending after a poll, or Running/Idle/Degraded whose Ready is not (yet) True.
hs.status = "Progressing"
hs.message = with_poll_failure(msg(ready, "endpoint is " .. phase))
return hs
