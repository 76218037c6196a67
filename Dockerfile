# byok-bot: one image for web/bot processes (`npm start`) and workers (`npm run worker`).
# Built in two stages: the TypeScript is compiled to dist/ with the dev dependencies, and the
# image keeps only the production ones plus dist/ (npm start runs the compiled JavaScript).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY . .
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund
COPY . .
COPY --from=build /app/dist ./dist
ENV HOST=0.0.0.0 PORT=8787 NODE_ENV=production
EXPOSE 8787
CMD ["npm", "start"]
