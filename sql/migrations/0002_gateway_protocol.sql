-- AgentIM 631a1ad's gateway protocol additions (head-gap B19, B24, B26; C9).
--
-- gateways.ephemeral: a gateway started for one command (`gateway:auth` `ephemeral: true`);
-- 631a1ad hides such gateways from the gateway list and cleans them up.
-- gateways.agentim_version: `deviceInfo.agentimVersion`, the gateway's package version, kept
-- so operators can tell which gateway builds connect (631a1ad accepts it and drops it).
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS ephemeral boolean NOT NULL DEFAULT false;
ALTER TABLE gateways ADD COLUMN IF NOT EXISTS agentim_version text;

-- messages.metadata: JSON object text, NULL for most messages. An agent-to-agent message sent
-- with `targetAgentName` keeps `{"targetAgentName": …}` here, so history shows it as the live
-- `server:message_complete` did (631a1ad sends it live only).
ALTER TABLE messages ADD COLUMN IF NOT EXISTS metadata text;
