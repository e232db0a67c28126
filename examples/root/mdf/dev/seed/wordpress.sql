CREATE TABLE wp_options (option_id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, option_name VARCHAR(191) NOT NULL UNIQUE, option_value LONGTEXT NOT NULL, autoload VARCHAR(20) NOT NULL DEFAULT 'yes');
CREATE TABLE wp_posts (ID BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, post_title TEXT NOT NULL, post_content LONGTEXT NOT NULL, guid VARCHAR(255) NOT NULL DEFAULT '');
INSERT INTO wp_options (option_name, option_value) VALUES ('siteurl', 'https://dev.mdf.example.test'), ('home', 'https://dev.mdf.example.test'), ('blogname', 'MDF dev');
INSERT INTO wp_posts (post_title, post_content, guid) VALUES ('Hello', 'Welcome to <a href="https://dev.mdf.example.test/hello">MDF</a>', 'https://dev.mdf.example.test/?p=1');
