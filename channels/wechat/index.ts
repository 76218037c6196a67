export { WechatChannel, WECHAT_MAX_MESSAGE, type WechatChannelOptions, type MessageLike } from './adapter.ts';
export { SendPacer, DEFAULT_PACING, type PacerOptions } from './pacer.ts';
export { sanitizeId, workspaceOf, groupWorkspaceOf, renderChoices } from './ids.ts';
