"""The policy optimiser MOPO and MOReL run inside their model MDPs: soft Q-learning over dose
levels (`SoftQAgent`), soft actor-critic over doses (`SacAgent`). Both act, update, and turn into
a `LearnedPolicy` through the same three calls here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from clinical_mborl.policies.buffers import Batch
from clinical_mborl.policies.config import ActorCriticConfig, LearnerConfig
from clinical_mborl.policies.learned import Head, LearnedPolicy
from clinical_mborl.policies.sac import Optimise, SacAgent, sac_optimiser_groups, sac_update
from clinical_mborl.policies.soft_q import SoftQAgent, soft_q_update
from clinical_mborl.policies.system import TrainingData, build_policy

Agent = SoftQAgent | SacAgent


def make_agent(data: TrainingData, config: ActorCriticConfig) -> Agent:
    """Soft-Q for discrete dose levels, SAC for continuous doses."""
    space = data.transitions.manifest.action_space
    if space.kind == "discrete":
        return SoftQAgent(data.in_dim, space.n_actions, config, data.gamma)
    return SacAgent(data.in_dim, space, config, data.gamma)


def agent_optimiser_groups(agent: Agent) -> dict[str, tuple[list[nn.Parameter], float]]:
    if isinstance(agent, SoftQAgent):
        return {"q": (list(agent.q.parameters()), agent.config.lr)}
    return sac_optimiser_groups(agent)


def agent_update(agent: Agent, batch: Batch, generator: torch.Generator, optimise: Optimise) -> dict[str, Tensor]:
    if isinstance(agent, SoftQAgent):
        return soft_q_update(agent, batch, optimise)
    return sac_update(agent, batch, generator, optimise)


def agent_policy(agent: Agent, data: TrainingData, config: LearnerConfig, algo: str, behavior: Any,
                 history: list[dict[str, float]]) -> LearnedPolicy:
    """Soft-Q: the Q-network is the policy (head "q"); SAC: the actor, with its critics."""
    if isinstance(agent, SoftQAgent):
        return build_policy(data, config, algo, "q", agent.q, agent.spec, behavior, tau=agent.tau,
                            history=history)
    head: Head = "logits" if agent.discrete else "tanh_gaussian"
    return build_policy(data, config, algo, head, agent.actor, agent.actor_spec, behavior,
                        critic=agent.critic, critic_spec=agent.critic_spec, history=history)
