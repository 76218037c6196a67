export { TelegramChannel, TELEGRAM_MAX_MESSAGE, type TelegramChannelOptions } from './adapter.ts';
export { verifyInitData, signInitData, type InitDataResult, type InitDataUser } from './initdata.ts';
export { messageToInbound, workspaceOf, groupWorkspaceOf } from './inbound.ts';
export { markdownToHtml, escapeHtml } from './format.ts';
export { commandList } from './commands.ts';
export { SendBudget, bucketName, type BudgetOptions } from './budget.ts';
